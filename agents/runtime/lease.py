"""A run's lease: who may advance it, for how long, and how it is kept alive during a slow call.

``claim`` takes the lease with one guarded UPDATE, committed at once (the claim counts even if the worker dies
right after): 0 rows means someone else holds it or the run is not runnable. Every commit of a step renews it
(``Session.commit``), and ``Heartbeat`` renews it while a model or tool call runs outside any transaction, so a
slow call is not taken for a dead worker; a killed worker stops renewing and its lease expires, after which the
sweeper sends the run to another worker. A run claimed more than ``AGENTS_MAX_DELIVERIES`` times without a step
committed in between is a dead letter.
"""

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents.models import Run, RunStatus
from agents.runtime import postgresql
from agents.runtime.transitions import change, sources
from audit.services import audit_record
from config import enqueue

if TYPE_CHECKING:
    from agents.runtime.session import Session

logger = logging.getLogger("steward.runtime")
ADVANCE_TASK = "agents.tasks.run_advance_task"  # sent by name: the tasks import the runtime, not the reverse


@dataclass(frozen=True)
class Claimed:
    """A run just claimed: read back with its agent, whether this is its first claim (then it has no steps yet), and
    step ids reserved for it (PostgreSQL)."""

    run: Run
    first: bool
    ids: list[int]


def claim(run_id: Any, owner: str, *, reserve: int = 0) -> Claimed | None:
    """Take the run's lease if it is free, expired, or already ``owner``'s; ``None`` when someone else holds it or
    the run is not runnable. On PostgreSQL one statement also reads the run back and reserves ``reserve`` step ids."""
    now = timezone.now()
    expires = now + dt.timedelta(seconds=settings.AGENTS_LEASE_SECONDS)
    if postgresql.used():
        found = postgresql.claim(run_id, owner, now, expires, reserve)
        # A run's first claim sets its start to this claim's time: a run claimed before has an earlier start.
        return None if found is None else Claimed(found[0], first=found[0].started_at == now, ids=found[1])
    claimed = (
        Run.objects.filter(pk=run_id, status__in=sources(RunStatus.RUNNING))
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(lease_owner=owner))
        .update(
            status=RunStatus.RUNNING,
            lease_owner=owner,
            lease_expires_at=expires,
            deliveries=F("deliveries") + 1,
            started_at=Coalesce(F("started_at"), now),
            updated_at=now,
        )
    )
    if not claimed:
        return None
    run = Run.objects.select_related("agent").get(pk=run_id)
    return Claimed(run, first=run.started_at == now, ids=[])


def dead_letter(deliveries: int) -> str:
    """Why a run claimed ``deliveries`` times is a dead letter, or "" when it is not."""
    if deliveries <= settings.AGENTS_MAX_DELIVERIES:
        return ""
    return f"picked up {deliveries - 1} times without progress: dead letter"


class Heartbeat:
    """Keeps renewing a run's lease while a call of its ``advance()`` runs outside any transaction.

    One thread a process renews them all (started at the first call, a daemon: not a thread a call or an
    ``advance()``): it wakes every third of a lease (at least every second) and renews the lease of every call under
    way, each on a connection opened for the round. A call waits, as it ends, for a renewal under way, so that none
    overlaps the transaction that records the call."""

    lock = threading.Lock()  # held to renew, and to start or end a call
    calls: ClassVar[dict[int, tuple[Any, str]]] = {}  # the calls under way: their run and lease owner
    thread: ClassVar[threading.Thread | None] = None

    def __init__(self, run_id: Any, owner: str) -> None:
        self.run_id, self.owner = run_id, owner

    @contextlib.contextmanager
    def during_call(self) -> Iterator[None]:
        with Heartbeat.lock:
            if Heartbeat.thread is None or not Heartbeat.thread.is_alive():
                Heartbeat.thread = threading.Thread(target=_beat, daemon=True, name="lease-heartbeat")
                Heartbeat.thread.start()
            Heartbeat.calls[id(self)] = (self.run_id, self.owner)
        try:
            yield
        finally:
            with Heartbeat.lock:
                del Heartbeat.calls[id(self)]


def _beat() -> None:
    while True:
        time.sleep(max(1.0, settings.AGENTS_LEASE_SECONDS / 3))
        lease = settings.AGENTS_LEASE_SECONDS  # read each round: the thread lives as long as its process
        with Heartbeat.lock:
            if Heartbeat.calls:
                for run_id, owner in Heartbeat.calls.values():
                    _renew(run_id, owner, lease)
                connections.close_all()  # renewals are rare (calls slower than a third of a lease): none kept open


def _renew(run_id: Any, owner: str, lease: float) -> None:
    """Renew the lease; a database error is tried again at the next beat, on a fresh connection."""
    try:
        Run.objects.filter(pk=run_id, lease_owner=owner).update(
            lease_expires_at=timezone.now() + dt.timedelta(seconds=lease)
        )
    except DatabaseError:
        logger.warning("run %s: renewing the lease failed; trying again at the next beat", run_id)


def hand_back(session: "Session") -> None:
    """Let the lease go and queue the run for the next worker (a warm shutdown, between two steps)."""
    run, owner = session.run, session.owner
    with transaction.atomic():
        fields = {name: getattr(run, name) for name in change(run, RunStatus.QUEUED)}
        if not Run.objects.filter(pk=run.pk, lease_owner=owner, status=RunStatus.RUNNING).update(**fields):
            return
        details = {"reason": "the worker is shutting down", "worker": owner}
        audit_record(
            actor=session.actor,
            action="agent.run.handed_back",
            target=run,
            details=details,
            correlation_id=run.correlation_id,
        )
        enqueue.enqueue_after_commit(ADVANCE_TASK, str(run.pk), later="the runs sweeper")
