"""Sending Celery tasks after the transaction that made them necessary commits, whatever the broker does.

What a request committed stays committed when the broker is down: ``enqueue_after_commit`` logs the failure and
leaves the work to the sweeper that finds it in the database (``agents.services.runs_sweep`` for runs,
``webhooks.services.deliveries_sweep`` for deliveries), so the answer to the request does not depend on the broker.
``send`` is for work no sweeper finds: it raises ``BrokerUnavailable`` for the caller to say so.
"""

import logging
from typing import Any

import kombu.exceptions
import redis.exceptions
from celery import current_app
from django.db import transaction

from config.errors import BrokerUnavailable

logger = logging.getLogger(__name__)

# What publishing raises when the broker cannot be reached: kombu wraps most connection errors in its
# OperationalError; the rest reach us as Redis's or the socket's own.
BROKER_ERRORS: tuple[type[Exception], ...] = (
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)


def send(task: str, *args: Any) -> None:
    """Send the task named ``task`` with ``args`` (by name: whoever sends a task need not import it, so a module of
    tasks may import the services that send them); a broker that cannot be reached raises ``BrokerUnavailable``."""
    try:
        current_app.send_task(task, args=args)
    except BROKER_ERRORS as error:
        raise BrokerUnavailable(f"The task queue cannot be reached ({type(error).__name__}: {error}).") from error


def enqueue_after_commit(task: str, *args: Any, later: str) -> None:
    """Send the task named ``task`` with ``args`` once the current transaction commits (at once outside one).
    When the broker cannot be reached the failure is logged, naming ``later`` (what sends the work instead), and
    goes no further."""

    def send_or_leave() -> None:
        try:
            send(task, *args)
        except BrokerUnavailable as error:
            logger.warning("Not enqueued: %s%r; %s will. %s", task, args, later, error.message)

    transaction.on_commit(send_or_leave)
