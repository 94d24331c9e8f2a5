"""Periodic governance work, run by Celery beat."""

from celery import shared_task

from governance.services import review_items_expire


@shared_task
def review_items_expire_task() -> int:
    """Expire overdue review items (expiry denies). Safe to repeat: only pending items change."""
    return review_items_expire()
