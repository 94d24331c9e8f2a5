"""Liveness and readiness: readiness fails when Redis is unreachable or no worker is heard from, and says which
workers and beat are alive and when each was last heard from; the console's dashboard shows the same.

The tests about processes have a Redis of their own (``tests/brokers.py``), with real worker and beat processes.
"""

import contextlib
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.brokers import beat_on, redis_server, worker_on
from tests.support import wait_for

# The window this process judges by; beat is told a longer one, so that it ticks (and is heard from) every second.
WINDOW = 4
BEAT_ENV = {"HEARTBEAT_WINDOW_SECONDS": "10"}


def test_healthz(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def readyz(client: Client) -> tuple[int, dict[str, Any]]:
    response = client.get("/readyz")
    return response.status_code, response.json()


def ready_with(client: Client, condition: Callable[[int, dict[str, Any]], bool], what: str) -> dict[str, Any]:
    """``/readyz``'s answer once ``condition(status, body)`` holds."""
    found: dict[str, Any] = wait_for(
        lambda: (answer := readyz(client)) and condition(*answer) and answer[1], timeout=20, message=what
    )
    return found


def processes_panel(client: Client) -> str:
    page = client.get("/admin/").content.decode()
    found = re.search(r'<section [^>]*id="processes".*?</section>', page, re.DOTALL)
    assert found, "no processes panel on the dashboard"
    return found.group(0)


@pytest.mark.worker
@pytest.mark.usefixtures("celery_worker")
@pytest.mark.django_db
def test_readyz_when_everything_answers(client: Client) -> None:
    status, body = readyz(client)
    assert status == 200
    assert body["checks"] == {**body["checks"], "database": "ok", "redis": "ok", "workers": "ok"}
    assert any(worker["alive"] for worker in body["workers"])


def _closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.django_db
def test_readyz_is_503_naming_redis_when_redis_is_down(client: Client, settings: Any) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    status, body = readyz(client)
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("down: ConnectionError")
    unknown = "unknown: their heartbeats are in Redis, which does not answer"
    assert (body["checks"]["workers"], body["checks"]["beat"]) == (unknown, unknown)


@pytest.mark.worker
@pytest.mark.django_db
def test_readyz_and_the_dashboard_say_which_workers_and_beat_are_alive_and_503_once_no_worker_is(
    client: Client, admin: User, settings: Any, tmp_path: Path
) -> None:
    settings.HEARTBEAT_WINDOW_SECONDS = WINDOW
    client.force_login(admin)
    with redis_server(tmp_path / "redis") as server, contextlib.ExitStack() as stack:
        settings.REDIS_URL = server.url
        status, body = readyz(client)
        assert status == 503
        assert body == {
            "status": "unavailable",
            "checks": {
                "database": "ok",
                "redis": "ok",
                "workers": f"down: no worker heard from in the last {WINDOW} s",
                "beat": f"down: beat not heard from in the last {WINDOW} s",
            },
            "workers": [],
            "beat": [],
        }

        with worker_on(server, settings) as worker:
            body = ready_with(client, lambda status, body: status == 200, "the worker")
            assert body["status"] == "degraded"  # ready, but nothing sweeps without beat
            assert body["checks"]["beat"] == f"down: beat not heard from in the last {WINDOW} s"
            beat = stack.enter_context(beat_on(server, tmp_path, extra_env=BEAT_ENV))
            body = ready_with(client, lambda status, body: body["status"] == "ok", "beat")
            assert body["checks"] == {"database": "ok", "redis": "ok", "workers": "ok", "beat": "ok"}
            (heard,) = body["workers"]
            assert (heard["name"], heard["alive"]) == (worker.name, True)
            assert heard["seconds_ago"] < WINDOW
            (ticking,) = body["beat"]
            assert (ticking["name"].split("@")[0], ticking["alive"]) == ("beat", True), beat.log()[-2000:]
            panel = processes_panel(client)
            assert (worker.name in panel, ticking["name"] in panel) == (True, True)
            assert (panel.count(">alive<"), panel.count(">dead<")) == (2, 0)

            worker.kill()
            body = ready_with(client, lambda status, body: status == 503, "the killed worker to be missed")
            assert body["status"] == "unavailable"
            (gone,) = body["workers"]
            assert (gone["name"], gone["alive"]) == (worker.name, False)
            assert gone["seconds_ago"] >= WINDOW
            missing = f"down: no worker heard from in the last {WINDOW} s (last: {worker.name}, "
            assert body["checks"]["workers"].startswith(missing)
            assert body["checks"]["beat"] == "ok"
            panel = processes_panel(client)
            assert missing in panel
            assert panel.count(">dead<") == 1

            beat.stop()
            body = ready_with(client, lambda status, body: body["checks"]["beat"] != "ok", "beat to be missed")
            assert [ticked["alive"] for ticked in body["beat"]] == [False]
