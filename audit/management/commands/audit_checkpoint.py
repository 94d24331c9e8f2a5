from typing import Any

from django.core.management.base import BaseCommand

from audit.context import Actor, audit_context
from audit.services import audit_checkpoint_write


class Command(BaseCommand):
    help = "Sign the audit chain head with AUDIT_CHECKPOINT_KEY and store the checkpoint."

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.command_line()
        with audit_context(actor=actor):
            checkpoint = audit_checkpoint_write(actor=actor)
        if checkpoint is None:
            self.stdout.write("The audit trail is empty: nothing to checkpoint.")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Checkpoint {checkpoint.pk} signed at event {checkpoint.sequence} "
                f"(hash {checkpoint.hash}, signature {checkpoint.signature})."
            )
        )
