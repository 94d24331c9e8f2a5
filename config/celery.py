"""The Celery application: broker and reliability settings come from ``config.settings`` (``CELERY_*``)."""

import os
from typing import Any

from celery import Celery, signals
from django.db import close_old_connections

from config import heartbeats

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("steward")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect
@signals.task_postrun.connect
def _close_old_connections(sender: Any = None, **kwargs: Any) -> None:
    """Around every task, as Django does around every request: close a database connection that failed or is older
    than CONN_MAX_AGE, keep the others (``CELERY_DB_REUSE_MAX`` in the settings). Not for a task run eagerly, in the
    caller's own connection and transaction."""
    if not getattr(getattr(sender, "request", None), "is_eager", False):
        close_old_connections()


# Workers are heard from while they are up and connected to the broker (``config.heartbeats``; beat is, through its
# scheduler): when ready, on each of Celery's own event heartbeats, and no more once stopped.
signals.worker_ready.connect(heartbeats.on_worker_ready)
signals.heartbeat_sent.connect(heartbeats.on_heartbeat_sent)
signals.worker_shutdown.connect(heartbeats.on_worker_shutdown)
