"""Periodic audit work, run by Celery beat."""

from celery import shared_task

from audit.context import Actor
from audit.services import audit_checkpoint_write


@shared_task
def audit_checkpoint_write_task() -> int | None:
    """Sign the chain head. Safe to repeat: each run only adds one more checkpoint."""
    checkpoint = audit_checkpoint_write(actor=Actor.system("beat"))
    return checkpoint.sequence if checkpoint else None
