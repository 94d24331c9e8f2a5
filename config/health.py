"""Liveness and readiness probes.

``/readyz`` is ready (200) when the database and Redis answer and at least one Celery worker was heard from within
``HEARTBEAT_WINDOW_SECONDS`` (``config.heartbeats``); 503 naming what is down otherwise. It lists every worker and
beat with when each was last heard from. Beat missing makes the answer ``degraded``, still 200: the web serves
without it, but the sweeps do not run.
"""

from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from config import heartbeats

REQUIRED = ("database", "redis", "workers")  # what the platform is not ready without


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive; checks nothing else."""
    return JsonResponse({"status": "ok"})


def _database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure means "not ready"; the message says which
        return f"down: {exc.__class__.__name__}: {exc}".strip()
    return "ok"


def redis_status() -> str:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"down: {exc.__class__.__name__}: {exc}"
    finally:
        client.close()
    return "ok"


@dataclass(frozen=True)
class Processes:
    """The workers and beat as last heard from, and what readiness says of each kind."""

    workers: list[heartbeats.Heartbeat]
    beat: list[heartbeats.Heartbeat]
    workers_status: str
    beat_status: str

    @property
    def summary(self) -> list[tuple[str, str]]:
        return [("Workers", self.workers_status), ("Beat", self.beat_status)]

    @property
    def window(self) -> int:
        return int(settings.HEARTBEAT_WINDOW_SECONDS)


def _kind_status(missing: str, seen: list[heartbeats.Heartbeat]) -> str:
    """``ok`` when one of ``seen`` is alive; else ``missing`` (what is not heard from) and the latest heard from."""
    if any(beat.alive for beat in seen):
        return "ok"
    status = f"down: {missing} in the last {settings.HEARTBEAT_WINDOW_SECONDS} s"
    if seen:
        latest = min(seen, key=lambda beat: beat.seconds_ago)
        status += f" (last: {latest.name}, {latest.seconds_ago:.0f} s ago)"
    return status


def processes(*, redis_status: str = "ok") -> Processes:
    """The workers and beat, read from their heartbeats; unknown while Redis does not answer."""
    if redis_status == "ok":
        try:
            workers, beat = heartbeats.heard(heartbeats.WORKERS), heartbeats.heard(heartbeats.BEAT)
        except redis.RedisError as exc:
            redis_status = f"down: {exc.__class__.__name__}: {exc}"
    if redis_status != "ok":
        unknown = "unknown: their heartbeats are in Redis, which does not answer"
        return Processes([], [], unknown, unknown)
    return Processes(
        workers, beat, _kind_status("no worker heard from", workers), _kind_status("beat not heard from", beat)
    )


def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when the database and Redis answer and a worker was heard from lately; 503 naming what is down
    otherwise. Every worker and beat are listed with when each was last heard from."""
    checks = {"database": _database_status(), "redis": redis_status()}
    found = processes(redis_status=checks["redis"])
    checks.update(workers=found.workers_status, beat=found.beat_status)
    ready = all(checks[name] == "ok" for name in REQUIRED)
    status = "unavailable" if not ready else "ok" if checks["beat"] == "ok" else "degraded"
    body: dict[str, Any] = {
        "status": status,
        "checks": checks,
        "workers": [beat.as_dict() for beat in found.workers],
        "beat": [beat.as_dict() for beat in found.beat],
    }
    return JsonResponse(body, status=200 if ready else 503)
