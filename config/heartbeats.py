"""Heartbeats of the Celery workers and of beat: when each was last heard from, kept in Redis, read by ``/readyz``
and the console's dashboard.

A worker records one when it is ready (Celery's ``worker_ready`` signal) and then each time Celery sends its own
event heartbeat (``heartbeat_sent``, every two seconds while the worker is connected to the broker); a worker that
stops warmly takes its entry away (``worker_shutdown``). Beat records one on every tick of its scheduler
(``Scheduler``, Celery's persistent scheduler, which ticks at least every ``CELERY_BEAT_MAX_LOOP_INTERVAL``). A
process not heard from for ``HEARTBEAT_WINDOW_SECONDS`` is dead: killed, stopped, or cut off from the broker.

The entries are per name (a worker's hostname, ``beat@<host>``) in two Redis hashes; entries older than a day are
forgotten when a worker starts. Recording never fails the process that records: a Redis that does not answer is
logged, and the process is simply not heard from.
"""

import datetime as dt
import functools
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

import redis
from celery.beat import PersistentScheduler
from django.conf import settings

logger = logging.getLogger(__name__)

WORKERS = "steward:heartbeats:workers"
BEAT = "steward:heartbeats:beat"
FORGET_AFTER_SECONDS = 24 * 3600


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1, decode_responses=True)


def client() -> redis.Redis:
    """A client of ``REDIS_URL``'s server, one per URL and process (its connections are pooled)."""
    return _client(settings.REDIS_URL)


def record(key: str, name: str) -> None:
    """``name`` (of ``key``: ``WORKERS`` or ``BEAT``) was heard from now."""
    try:
        client().hset(key, name, repr(time.time()))
    except redis.RedisError as error:
        logger.warning("Heartbeat of %s not recorded: %s: %s", name, type(error).__name__, error)


def forget(key: str, name: str) -> None:
    try:
        client().hdel(key, name)
    except redis.RedisError as error:
        logger.warning("Heartbeat of %s not removed: %s: %s", name, type(error).__name__, error)


def forget_older(*, older_than: float = FORGET_AFTER_SECONDS) -> None:
    """Forget the processes not heard from for ``older_than`` seconds (workers that were killed long ago)."""
    cutoff = time.time() - older_than
    try:
        for key in (WORKERS, BEAT):
            stale = [name for name, seen in client().hgetall(key).items() if float(seen) < cutoff]
            if stale:
                client().hdel(key, *stale)
    except redis.RedisError as error:
        logger.warning("Old heartbeats not forgotten: %s: %s", type(error).__name__, error)


@dataclass(frozen=True)
class Heartbeat:
    """A process as last heard from."""

    name: str
    last_seen: dt.datetime
    seconds_ago: float
    alive: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alive": self.alive,
            "last_seen": self.last_seen.isoformat(timespec="seconds"),
            "seconds_ago": round(self.seconds_ago, 1),
        }


def heard(key: str, *, now: float | None = None) -> list[Heartbeat]:
    """Every process of ``key`` heard from in the last day, alive ones first, then by name. Raises
    ``redis.RedisError`` when Redis does not answer."""
    now = time.time() if now is None else now
    window = settings.HEARTBEAT_WINDOW_SECONDS
    found = []
    for name, raw_seen in client().hgetall(key).items():
        seen = float(raw_seen)
        ago = max(0.0, now - seen)
        found.append(Heartbeat(str(name), dt.datetime.fromtimestamp(seen, tz=dt.UTC), ago, ago <= window))
    return sorted(found, key=lambda beat: (not beat.alive, beat.name))


# --- the receivers of Celery's signals (connected in config.celery) ------------------------------------------------


def on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    forget_older()
    record(WORKERS, sender.hostname)


def on_heartbeat_sent(sender: Any = None, **kwargs: Any) -> None:
    record(WORKERS, sender.eventer.hostname)


def on_worker_shutdown(sender: Any = None, **kwargs: Any) -> None:
    forget(WORKERS, sender.hostname)


def beat_name() -> str:
    return f"beat@{socket.gethostname()}"


class Scheduler(PersistentScheduler):
    """Celery beat's persistent scheduler (the schedule in ``--schedule``'s file), recording beat's heartbeat on
    every tick: beat is heard from as long as it keeps ticking."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        record(BEAT, beat_name())
        return super().tick(*args, **kwargs)
