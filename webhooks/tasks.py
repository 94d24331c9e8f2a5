"""Celery tasks for webhook deliveries: thin, idempotent, by id."""

from typing import Any

from celery import shared_task
from django.utils import timezone

from webhooks import services


@shared_task
def webhook_deliveries_sweep_task() -> int:
    """Periodic: hand overdue deliveries whose task was lost to a worker again."""
    return services.deliveries_sweep()


@shared_task(bind=True, max_retries=None)
def webhook_deliver_task(self: Any, delivery_id: str) -> None:
    """Make a delivery's attempt, then come back when the next one is due (exponential backoff). How many
    attempts are made is the delivery's to say (``WEBHOOKS_MAX_ATTEMPTS``), not Celery's retry count: a message
    delivered twice claims the delivery once."""
    retry_at = services.delivery_attempt(delivery_id=delivery_id)
    if retry_at is not None:
        raise self.retry(countdown=max(0.0, (retry_at - timezone.now()).total_seconds()))
