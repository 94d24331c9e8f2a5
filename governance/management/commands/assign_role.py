from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.context import Actor
from config.errors import DomainError
from governance.roles import ROLE_DESCRIPTIONS, Role
from governance.services import user_role_assign, user_role_revoke


class Command(BaseCommand):
    help = "Give a user one of the roles (or take it away with --revoke). Roles: " + "; ".join(
        f"{role.value}: {ROLE_DESCRIPTIONS[role]}" for role in Role
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("role", choices=[role.value for role in Role])
        parser.add_argument("--revoke", action="store_true", help="Take the role away instead.")

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        try:
            user = user_model._default_manager.get_by_natural_key(options["username"])
        except user_model.DoesNotExist:
            raise CommandError(f"No user named {options['username']!r}.") from None
        service = user_role_revoke if options["revoke"] else user_role_assign
        try:
            service(actor=Actor.command_line(), user=user, role=options["role"])
        except DomainError as exc:
            raise CommandError(exc.message) from None
        verb = "no longer has" if options["revoke"] else "now has"
        self.stdout.write(self.style.SUCCESS(f"{user.get_username()} {verb} the role {options['role']}."))
