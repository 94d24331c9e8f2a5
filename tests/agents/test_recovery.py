"""Faults a run survives without losing a completed call: SIGTERM to a worker's whole process group in the middle
of a call (what ``systemd`` and container runtimes send), and the worker's database backends terminated while a
call runs, each on a real Celery worker of its own, against the test database and Redis; and a backlog the sweeper
must not send again at every sweep, counted on the real broker's queue.
"""

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import Run, RunStatus, Step, StepKind, StepStatus
from agents.services import runs_sweep
from agents.tasks import run_advance_task
from config import celery_app
from governance.models import ReviewItem
from tests.agents.test_runs_worker import SLOW, AgentFactory, actions, at_rest, enqueued_on, on_worker, spec, start
from tests.agents.tools import lines
from tests.support import child_environment, wait_for

ROOT = Path(__file__).resolve().parents[2]
Client = Callable[[User], APIClient]


@dataclass
class Worker:
    queue: str
    process: "subprocess.Popen[bytes]"
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def own_worker(celery_worker: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """``own_worker(pool=, env=)``: a worker on a queue of its own, in a process group of its own (so a test may
    signal the whole group, as a service manager does), its database connections named after its queue."""
    started: list[Worker] = []

    def start_worker(*, pool: str = "solo", env: dict[str, str] | None = None) -> Worker:
        queue = f"steward-recovery-{uuid.uuid4().hex[:8]}"
        log = tmp_path / f"{queue}.log"
        environment = {**child_environment(queue=queue), **(env or {})}
        with log.open("wb") as out:
            command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", pool, "--concurrency", "1"]
            command += ["-Q", queue, "-n", f"{queue}@localhost", "--loglevel", "INFO"]
            command += ["--without-gossip", "--without-mingle"]
            process = subprocess.Popen(
                command, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        worker = Worker(queue, process, log)
        started.append(worker)
        deadline = time.monotonic() + 60
        while not celery_app.control.ping(destination=[f"{queue}@localhost"], timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker did not start:\n{worker.output()}")
        return worker

    yield start_worker
    for worker in started:
        if worker.process.poll() is None:
            os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait(timeout=10)


def slow_run(client: APIClient, worker: Worker, tmp_path: Path) -> tuple[str, Path, Path]:
    """A run of ``slowpoke`` on ``worker``, once its (not idempotent) call has started and waits for ``release``."""
    path, release = tmp_path / "out.txt", tmp_path / "release"
    with enqueued_on(worker.queue):
        run_id = str(start(client, "slowpoke", {"path": str(path), "release": str(release)})["id"])
    wait_for(lambda: lines(path), message=f"the call to start on the worker:\n{worker.output()}")
    return run_id, path, release


def assert_called_once_and_recorded(client: APIClient, run_id: str, path: Path) -> None:
    run = at_rest(client, run_id)
    assert run["status"] == "succeeded", run
    assert run["result"] == {"answer": "Done."}
    assert lines(path) == ["started slow", "slow"]  # the call finished once, and was not made again
    [step] = Step.objects.filter(run_id=run_id, kind=StepKind.TOOL_CALL)
    assert step.status == StepStatus.SUCCEEDED
    assert not ReviewItem.objects.filter(payload__run=run_id).exists()  # nobody was asked "may or may not"
    trail = actions(run)
    assert trail.count("agent.tool.executing") == trail.count("agent.tool.succeeded") == 1


@on_worker
def test_sigterm_to_the_worker_s_process_group_lets_the_call_in_hand_finish_and_hands_the_run_back(
    agent: AgentFactory, operator: User, api_as: Client, tmp_path: Path, own_worker: Callable[..., Worker]
) -> None:
    agent("slowpoke", spec(SLOW, [{"tool": "test.slow"}]))
    client = api_as(operator)
    worker = own_worker(pool="prefork")
    run_id, path, release = slow_run(client, worker, tmp_path)

    os.killpg(worker.process.pid, signal.SIGTERM)  # the parent and its pool's child, as systemd does
    time.sleep(1)
    release.touch()
    assert worker.process.wait(timeout=30) == 0, worker.output()  # a warm shutdown, not a crash
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.lease_owner) == (RunStatus.QUEUED, ""), worker.output()
    assert "agent.run.handed_back" in actions({"correlation_id": run.correlation_id})

    run_advance_task.delay(run_id)  # the session's worker takes it up, as the next worker would
    assert_called_once_and_recorded(client, run_id, path)


@on_worker
@pytest.mark.skipif(connection.vendor != "postgresql", reason="terminates PostgreSQL backends")
def test_a_call_that_completed_is_recorded_after_the_worker_s_database_backends_were_terminated(
    agent: AgentFactory, operator: User, api_as: Client, tmp_path: Path, own_worker: Callable[..., Worker]
) -> None:
    agent("slowpoke", spec(SLOW, [{"tool": "test.slow"}]))
    client = api_as(operator)
    name = f"steward-backends-{uuid.uuid4().hex[:8]}"
    url = child_environment()["DATABASE_URL"]
    worker = own_worker(env={"DATABASE_URL": f"{url}?application_name={name}"})
    run_id, path, release = slow_run(client, worker, tmp_path)

    with connection.cursor() as cursor:
        terminate = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s"
        cursor.execute(terminate, [name])
        [terminated] = cursor.fetchone()
    assert terminated >= 1
    release.touch()
    assert_called_once_and_recorded(client, run_id, path)
    assert "retrying on a fresh connection" in worker.output()


@pytest.mark.usefixtures("redis_server")
def test_the_sweeper_sends_a_stale_run_once_a_lease_not_at_every_sweep(
    agent: AgentFactory, operator: User, api_as: Client, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    agent("slowpoke", spec(SLOW, [{"tool": "test.slow"}]))
    client = api_as(operator)
    queue = f"steward-nobody-{uuid.uuid4().hex[:8]}"  # a queue no worker reads: the backlog stays there
    with enqueued_on(queue):
        with django_capture_on_commit_callbacks(execute=True):
            ids = [start(client, "slowpoke", {"path": "/dev/null", "release": ""})["id"] for _ in range(3)]
        lease = dt.timedelta(seconds=settings.AGENTS_LEASE_SECONDS)
        Run.objects.filter(pk__in=ids).update(updated_at=timezone.now() - 2 * lease)  # their messages were lost
        assert queued(queue) == 3

        def sweep() -> int:
            with django_capture_on_commit_callbacks(execute=True):
                return runs_sweep()

        assert sweep() == 3
        assert sweep() == sweep() == 0  # the same backlog is not sent again and again
        assert queued(queue) == 6
        Run.objects.filter(pk__in=ids).update(swept_at=timezone.now() - lease - dt.timedelta(seconds=1))
        assert sweep() == 3  # a lease later, still not moving: sent once more
        assert queued(queue) == 9


def queued(queue: str) -> int:
    """The messages waiting on ``queue``, as the Redis broker holds them (a list under the queue's name)."""
    with celery_app.connection() as broker:
        client = broker.default_channel.client  # type: ignore[attr-defined]
        return int(client.llen(queue))
