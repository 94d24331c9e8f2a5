"""Steward's two contenders in the run benchmark (``bench.runs``): agent runs on the Celery worker, and the bare task.

``prepare`` releases the benchmark agent through the lifecycle; ``run_phase`` starts runs with ``run_start`` as the
API does and waits for the worker to finish them; ``bare_phase`` sends the bare task (``bench.tools``) to the same
worker. Both check every run (task) and return a ``bench.peers.Batch``: seconds from just before the first start
(send) to the last finish, and each one's wall time on the worker (from its claim, so not its time in the queue).

``steward_counting`` and ``bare_counting`` are ``bench.peers.counting.per_run``'s passes for them, done in this
process once the worker has stopped: run_start then ``advance`` (as the worker calls it) for each run, or the bare
task's function; statements from Django's query log (``CaptureQueriesContext``: BEGIN, COMMIT and ROLLBACK
included, as Django issues them), client transactions from it too (a BEGIN starts one, and so does a statement
outside BEGIN…COMMIT), the connections closed at the end of each pass so that the server's statistics are complete.
"""

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import FINISHED_RUN_STATUSES, Run, RunStatus, Step, StepKind, StepStatus
from agents.runtime import advance
from agents.services import AGENT_KIND, run_start
from agents.tool_versions import TOOL_KIND
from audit.context import Actor, audit_context
from bench import tools as bench_tools
from bench.common import BenchError, make_user, release
from bench.peers import Batch
from bench.peers.counting import Tally
from bench.worker import Worker, wait_for
from demo.models import DemoAlert
from governance.demo import latest_released
from governance.models import GovernedObject
from governance.roles import Role

AGENT_SLUG = "bench-noop-agent"


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


def measured(begun: dt.datetime, spans: list[tuple[dt.datetime, dt.datetime]]) -> Batch:
    """A batch begun at ``begun``, from each run's (task's) start and finish on the worker."""
    return Batch(
        seconds=(max(end for _, end in spans) - begun).total_seconds(),
        run_seconds=[(end - start).total_seconds() for start, end in spans],
    )


def start_runs(operator: User, count: int, first: int) -> list[Any]:
    """``count`` runs started one after another by the Operator, inputs ``{"n": first}``, …; their ids."""
    ids: list[Any] = []
    for number in range(first, first + count):
        run, created = run_start(actor=operator, agent=AGENT_SLUG, input={"n": number})
        if not created:
            raise BenchError(f"run_start returned an existing run for input {number}")
        ids.append(run.pk)
    return ids


def run_phase(what: str, worker: Worker, operator: User, count: int, first: int, calls: int, stall: float) -> Batch:
    """Start ``count`` runs, wait for all to finish, check every one; see the module docstring."""
    begun = timezone.now()
    ids = start_runs(operator, count, first)
    finished = Run.objects.filter(pk__in=ids, status__in=FINISHED_RUN_STATUSES)
    wait_for(what, worker, count, finished.count, stall, lambda: runs_stuck(ids))
    check_runs(what, ids, calls)
    rows = list(Run.objects.filter(pk__in=ids).values_list("started_at", "finished_at"))
    return measured(begun, [(started, ended) for started, ended in rows if started and ended])


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


def bare_phase(what: str, worker: Worker, count: int, first: int, calls: int, stall: float) -> Batch:
    """Send ``count`` bare tasks to the worker's queue, wait for all their rows, check them."""
    channel = f"bench-{uuid.uuid4().hex[:12]}"
    steps = 2 * calls + 1
    begun = timezone.now()
    for number in range(first, first + count):
        bench_tools.bare_steps_task.apply_async(args=(channel, number, calls, {"n": number}), queue=worker.queue)
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
    return measured(begun, [(start, last) for start, last, _ in tasks.values()])


# --- counting (see the module docstring) --------------------------------------------------------------------------


def log_tally(log: CaptureQueriesContext) -> Tally:
    """Statements and transactions in Django's query log."""
    counted, inside = Tally(statements=len(log)), False
    for query in log.captured_queries:
        if query["sql"].startswith("BEGIN"):  # SQLite's backend sends BEGIN IMMEDIATE itself
            counted.transactions, inside = counted.transactions + 1, True
        elif query["sql"] in ("COMMIT", "ROLLBACK"):
            inside = False
        elif not inside:
            counted.transactions += 1
    return counted


def steward_counting(operator: User, numbers: Callable[[int], range], done: list[Any]) -> Callable[[int], Tally]:
    """Passes of runs started and advanced here (ids appended to ``done``, to be checked after counting)."""

    def runs(count: int) -> Tally:
        with CaptureQueriesContext(connection) as log:
            for number in numbers(count):
                run, _ = run_start(actor=operator, agent=AGENT_SLUG, input={"n": number})
                advance(run.pk, "bench-count")
                done.append(run.pk)
        connections.close_all()
        return log_tally(log)

    return runs


def bare_counting(calls: int, numbers: Callable[[int], range]) -> Callable[[int], Tally]:
    """Passes of the bare task's function, called here."""
    channel = f"bench-count-{uuid.uuid4().hex[:8]}"

    def runs(count: int) -> Tally:
        with CaptureQueriesContext(connection) as log:
            for number in numbers(count):
                bench_tools.bare_steps_task(channel, number, calls, {"n": number})
        connections.close_all()
        return log_tally(log)

    return runs
