"""A delivery made while the broker is down: the transaction that made it commits all the same, and the sweeper sends
it once the broker is back. A Redis of the test's own (``tests/brokers.py``) that it stops and starts, and a real
worker on it."""

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from tests.brokers import redis_server, worker_on
from tests.support import wait_for
from tests.webhooks.test_webhooks import Receiver, enqueue, receiver, register
from webhooks import services
from webhooks.models import DeliveryStatus, WebhookDelivery

__all__ = ["receiver"]  # the fixture of tests/webhooks/test_webhooks.py, for the test here


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_delivery_made_while_the_broker_is_down_commits_and_is_sent_by_the_sweeper_later(
    api_as: Callable[[User], APIClient],
    admin: User,
    operator: User,
    receiver: Receiver,
    settings: Any,
    tmp_path: Path,
) -> None:
    created = register(api_as(admin), operator, receiver.url_for(operator))
    with redis_server(tmp_path / "redis") as server, worker_on(server, settings) as worker:
        server.stop()

        delivery = enqueue(created["id"])

        assert WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.PENDING
        server.start()
        overdue = timezone.now() - dt.timedelta(minutes=5)  # its message was lost a while ago
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=overdue)
        assert services.deliveries_sweep() == 1
        wait_for(lambda: receiver.received_by(operator), message=f"the delivery\n{worker.log()[-3000:]}")
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED
