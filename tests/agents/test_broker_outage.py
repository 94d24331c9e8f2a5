"""What a broker outage does to runs: a run committed while the broker is down is answered 202 and dispatched by
the sweeper once the broker is back; an approval decided meanwhile resumes the run the same way; a compensation
asked for meanwhile is refused (503, nothing undone, nothing lost) in the API's one error shape. A worker outlives
broker restarts, is heard from again after each (``/readyz``) and finishes runs.

The tests have a Redis of their own (``tests/brokers.py``) that they stop and start, and a real worker on it.
"""

import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db.models import F
from django.test import Client
from rest_framework.test import APIClient

from agents.models import Run, RunStatus
from agents.services import runs_sweep
from audit.models import AuditEvent
from tests.agents.test_runs_worker import APPEND, at_rest, line_input, put_script, spec, tool_steps
from tests.agents.tools import lines
from tests.brokers import RedisServer, Worker, redis_server, using_broker
from tests.support import wait_for

Clients = Callable[[User], APIClient]
AgentFactory = Callable[..., Any]

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory, django_db_setup: None) -> Iterator[tuple[RedisServer, Worker]]:
    """A Redis of these tests' own with a worker on it (on the test database), for the module: each test may stop and
    start the Redis."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        worker = Worker(server, Path(django_settings.VAR_DIR))
        worker.start()
        try:
            yield server, worker
        finally:
            worker.stop()


@pytest.fixture
def broker(outage: tuple[RedisServer, Worker], settings: Any) -> Iterator[tuple[RedisServer, Worker]]:
    """The module's Redis, up, and its worker; this process publishes there and reads Redis there for the test."""
    server, worker = outage
    if server.process is None:  # a test before stopped it and did not get to start it again
        server.start()
    with using_broker(server, worker.queue, settings):
        yield server, worker


def a_lease_later(run_id: str) -> None:
    """The run has waited in the queue for longer than a lease: what the sweeper looks for."""
    Run.objects.filter(pk=run_id).update(updated_at=F("updated_at") - dt.timedelta(hours=1))


def test_a_run_started_while_the_broker_is_down_is_answered_202_and_the_sweeper_dispatches_it_later(
    broker: tuple[RedisServer, Worker], agent: AgentFactory, operator: User, api_as: Clients, tmp_path: Path
) -> None:
    server, worker = broker
    agent("quick", spec(APPEND, [{"tool": "test.append"}]))
    client = api_as(operator)
    server.stop()

    response = client.post(
        "/api/agents/quick/runs/", {"input": line_input(tmp_path / "out.txt", "once")}, format="json"
    )

    assert response.status_code == 202, response.content
    started = response.json()
    assert started["status"] == "queued"
    assert list(Run.objects.values_list("pk", "status")) == [(Run.objects.get().pk, RunStatus.QUEUED)]

    server.start()
    assert runs_sweep() == 0  # queued for less than a lease: its message may still be on its way
    a_lease_later(started["id"])
    assert runs_sweep() == 1
    run = at_rest(client, started["id"], timeout=30)
    assert run["status"] == "succeeded", (run, worker.log()[-3000:])
    assert lines(tmp_path / "out.txt") == ["once"]
    assert Run.objects.count() == 1


def test_an_approval_decided_while_the_broker_is_down_resumes_the_run_through_the_sweeper(
    broker: tuple[RedisServer, Worker],
    agent: AgentFactory,
    operator: User,
    approver: User,
    api_as: Clients,
    tmp_path: Path,
) -> None:
    server, worker = broker
    agent("careful", spec(APPEND, [{"tool": "test.append", "approval": "always"}]))
    client = api_as(operator)
    response = client.post(
        "/api/agents/careful/runs/", {"input": line_input(tmp_path / "out.txt", "ok")}, format="json"
    )
    parked = at_rest(client, response.json()["id"])
    assert parked["status"] == "awaiting_approval", (parked, worker.log()[-3000:])
    (step,) = tool_steps(parked)
    deciding = api_as(approver)
    approval = deciding.get(f"/api/approvals/{step['approval']}/").json()
    server.stop()

    decided = deciding.post(
        f"/api/approvals/{approval['id']}/decide/", {"decision": "approve", "digest": approval["digest"]}, format="json"
    )

    assert decided.status_code == 200, decided.content
    assert Run.objects.get(pk=parked["id"]).status == RunStatus.QUEUED
    server.start()
    a_lease_later(parked["id"])
    assert runs_sweep() == 1
    run = at_rest(client, parked["id"], timeout=30)
    assert run["status"] == "succeeded", (run, worker.log()[-3000:])
    assert lines(tmp_path / "out.txt") == ["ok"]


def test_a_compensation_asked_for_while_the_broker_is_down_is_refused_in_the_one_error_shape_and_audited(
    broker: tuple[RedisServer, Worker], agent: AgentFactory, operator: User, api_as: Clients, tmp_path: Path
) -> None:
    server, worker = broker
    agent("writer", spec(put_script(("test.put", "a")), [{"tool": "test.put"}]))
    client, path = api_as(operator), tmp_path / "out.txt"
    response = client.post("/api/agents/writer/runs/", {"input": {"path": str(path)}}, format="json")
    done = at_rest(client, response.json()["id"])
    assert done["status"] == "succeeded", (done, worker.log()[-3000:])
    server.stop()

    refused = client.post(f"/api/runs/{done['id']}/compensate/", {"reason": "undo it"}, format="json")

    assert refused.status_code == 503, refused.content
    assert refused.json()["error"]["code"] == "broker_unavailable"
    assert set(refused.json()) == {"error"}
    assert set(refused.json()["error"]) == {"code", "message", "fields"}
    trail = AuditEvent.objects.filter(target_id=done["id"]).order_by("sequence").values_list("action", flat=True)
    assert list(trail)[-2:] == ["agent.run.compensation_requested", "agent.run.compensation_not_queued"]
    assert Run.objects.get(pk=done["id"]).status == RunStatus.SUCCEEDED

    assert lines(path) == ["put a"]

    server.start()
    accepted = client.post(f"/api/runs/{done['id']}/compensate/", {"reason": "undo it"}, format="json")
    assert accepted.status_code == 202, accepted.content
    wait_for(lambda: Run.objects.get(pk=done["id"]).status == RunStatus.ROLLED_BACK, message="the compensation")
    assert lines(path) == ["put a", "unput a"]


def heard_from(client: Client, worker: Worker) -> bool:
    return any(heard["name"] == worker.name and heard["alive"] for heard in client.get("/readyz").json()["workers"])


def test_a_worker_outlives_three_broker_restarts_is_heard_from_again_and_finishes_a_run(
    broker: tuple[RedisServer, Worker],
    agent: AgentFactory,
    operator: User,
    api_as: Clients,
    client: Client,
    tmp_path: Path,
) -> None:
    server, worker = broker
    agent("quick", spec(APPEND, [{"tool": "test.append"}]))
    for restart in range(1, 4):
        server.stop()
        time.sleep(0.5)  # down long enough for the worker to find out
        server.start()  # with nothing in it: the heartbeats of before are gone
        wait_for(
            lambda: heard_from(client, worker), message=f"the worker after restart {restart}\n{worker.log()[-3000:]}"
        )
        assert worker.alive()
    assert worker.log().count("Connection to broker lost") >= 3, worker.log()[-3000:]

    operating = api_as(operator)
    started = operating.post(
        "/api/agents/quick/runs/", {"input": line_input(tmp_path / "out.txt", "after")}, format="json"
    )
    run = at_rest(operating, started.json()["id"])
    assert run["status"] == "succeeded", (run, worker.log()[-3000:])
    assert lines(tmp_path / "out.txt") == ["after"]
