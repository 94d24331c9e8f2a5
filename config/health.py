"""Liveness and readiness probes."""

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse


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


def _redis_status() -> str:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"down: {exc.__class__.__name__}: {exc}"
    finally:
        client.close()
    return "ok"


def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when the database and Redis both answer; 503 naming what is down otherwise."""
    checks = {"database": _database_status(), "redis": _redis_status()}
    ready = all(status == "ok" for status in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)
