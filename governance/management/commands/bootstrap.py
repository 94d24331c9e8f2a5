"""First-run setup for ``make run``: the admin account (created once), the demo cast, the demo agents, personas
and guardrail policies (idempotent)."""

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from agents import demo as agents_demo
from audit.context import Actor, audit_context
from governance import demo_policies
from governance.roles import Role
from governance.services import user_role_assign
from personas import demo as personas_demo

ADMIN_USERNAME = "admin"
DEMO_USERS = {
    "viewer": Role.VIEWER,
    "auditor": Role.AUDITOR,
    "editor": Role.EDITOR,
    "approver": Role.APPROVER,
    "approver2": Role.APPROVER,
    "operator": Role.OPERATOR,
    "client": Role.CLIENT,
}
# The demo's client application: the demo API token is its token (a Client talks to personas and starts runs, and
# nothing else; the people deciding and undoing sign in as themselves).
DEMO_CLIENT = "client"


def _secret_file(path: Path) -> str:
    """A password kept in ``var/`` (mode 0600) so it can be shown again on the next start."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(12))
    return path.read_text().strip()


class Command(BaseCommand):
    help = "Create the admin account once, and the demo users with one role each. Safe to run again."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("bootstrap")
        user_model = get_user_model()
        with audit_context(actor=actor):
            admin_password = _secret_file(settings.VAR_DIR / "admin-password")
            admin, created = user_model._default_manager.get_or_create(
                username=ADMIN_USERNAME, defaults={"is_staff": True, "is_superuser": True}
            )
            if created:
                admin.set_password(admin_password)
                admin.save(update_fields=["password"])
                user_role_assign(actor=actor, user=admin, role=Role.ADMIN)

            demo_password = _secret_file(settings.VAR_DIR / "demo-password")
            for username, role in DEMO_USERS.items():
                user, created = user_model._default_manager.get_or_create(username=username)
                if created:
                    user.set_password(demo_password)
                    user.save(update_fields=["password"])
                    user_role_assign(actor=actor, user=user, role=role)
            Token.objects.get_or_create(user=user_model._default_manager.get(username=DEMO_CLIENT))
            users = user_model._default_manager
            editor = users.get(username="editor")
            approvers = [users.get(username="approver"), users.get(username="approver2")]
            agents_demo.load(editor=editor, approvers=approvers)
            personas_demo.load(editor=editor, approvers=approvers)
            demo_policies.load(editor=editor, approvers=approvers)

        # How to sign in is printed by config.serve once everything answers (make run), not here, where the
        # processes' start-up would scroll it away.
        self.stdout.write(
            f"Accounts ready: {ADMIN_USERNAME} and the demo users {', '.join(DEMO_USERS)}, one role each; "
            f"their passwords are in {settings.VAR_DIR / 'admin-password'} and {settings.VAR_DIR / 'demo-password'}."
        )
