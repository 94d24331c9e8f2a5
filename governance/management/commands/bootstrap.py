"""First-run setup for ``make run``: the admin account (created once), then what the installed apps seed on
``governance.signals.bootstrapped`` (the demo app, while ``STEWARD_DEMO`` is on: its cast, agents, personas and
guardrail policies). Idempotent."""

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from audit.context import Actor, audit_context
from governance.roles import Role
from governance.services import user_role_assign
from governance.signals import bootstrapped

ADMIN_USERNAME = "admin"


def secret_file(path: Path) -> str:
    """A password kept in ``var/`` (mode 0600) so it can be shown again on the next start."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(12))
    return path.read_text().strip()


class Command(BaseCommand):
    help = "Create the admin account once, and what the installed apps seed (the demo's). Safe to run again."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("bootstrap")
        user_model = get_user_model()
        with audit_context(actor=actor):
            admin_password = secret_file(settings.VAR_DIR / "admin-password")
            admin, created = user_model._default_manager.get_or_create(
                username=ADMIN_USERNAME, defaults={"is_staff": True, "is_superuser": True}
            )
            if created:
                admin.set_password(admin_password)
                admin.save(update_fields=["password"])
                user_role_assign(actor=actor, user=admin, role=Role.ADMIN)
            seeded = bootstrapped.send(sender=self.__class__, actor=actor)

        # How to sign in is printed by config.serve once everything answers (make run), not here, where the
        # processes' start-up would scroll it away.
        self.stdout.write(f"Account ready: {ADMIN_USERNAME}; its password is in {settings.VAR_DIR / 'admin-password'}.")
        for _receiver, made in seeded:
            if made:
                self.stdout.write(made)
