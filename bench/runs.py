"""Benchmark of agent runs against their peers: runs per second, time per step, statements and transactions a run.

Run as ``python -m bench.runs`` (``make bench-runs``). It never touches the dev or test data: like ``bench.audit`` it
creates and migrates a throw-away database next to the configured one (``bench_runs_<random>`` on PostgreSQL,
``var/bench-runs-<random>.sqlite3`` on SQLite), and every peer gets an empty one of its own on the same server
(``bench_runs_<peer>_<random>``); all are dropped at the end, even when the run fails.

**The loop**, the same for every contender: the scripted model (``bench.tools.script``: call the no-op tool
``bench.noop``, ``--calls`` times, default 5, then answer) and the tool, ``2 * calls + 1`` steps a run (11), each
durably recorded in PostgreSQL before the next (see ``langgraph-async`` for the one exception), one worker doing one
run after another. Every contender calls the same model and tool code (``bench.tools.model_turn``, ``tool_turn``)
and every run is checked: it must end with the script's answer (Steward's also with its steps and step rows).

**The contenders:**

- ``steward``: the agent ``bench-noop-agent``, released through the lifecycle (an Editor drafts it, two Approvers
  approve it; autonomous, one grant with no approval, no guardrail policy), runs started by an Operator with
  ``agents.services.run_start`` as the API does, each enqueuing ``run_advance_task`` when it commits, advanced by a
  real ``celery -A config worker`` (``bench.worker``: solo pool; ``--concurrency N`` > 1: prefork, which the peers
  do not match) on a queue of its own and the throw-away database.
- ``bare``: ``bench.tools.bare_steps_task`` on the same worker: the same model and tool, one Django insert per
  step, none of the runtime. It is the baseline of Steward's per-step overhead (time per step minus the bare
  task's).
- the peers (``bench/peers/``, ``--peers``): ``langgraph-sync``, ``langgraph-async``, ``langgraph-async-thread``,
  ``dbos`` and ``psycopg`` (the floor), in this process, one thread, each on its own database. They need PostgreSQL:
  on SQLite they are skipped, with a line saying so.

**Rounds** (``--rounds``, at least 3): each round runs every contender's batch of ``--runs`` runs (default 100),
the order rotated by one each round, so that none always runs first or last. Steward's worker stays up through the
rounds (warmed up once with ``--warmup`` runs and bare tasks); a peer connects (DBOS: launches) before each batch,
does ``--warmup`` runs, untimed, then its batch, and disconnects. Runs/s: runs over the time from just before the
first start (for Steward, its first ``run_start``; for the bare task, its first send) to the last finish. Time per
step: each run's wall time (Steward and bare: from the worker's claim to the finish, so not the time in the queue)
over its steps; p50 and p90 over runs. Printed: runs/s per round, the median over rounds and the min-max spread;
time per step over all rounds' runs; the ratio Steward / each contender per round, its median and spread; the
1-minute load average at the start, at each round and at the end; the issue's targets, met or not (not fatal).

**Statements and transactions a run** are counted after the rounds, once the worker has stopped, in separate passes
(``bench.peers.counting.per_run``: a pass of one run and a pass of ``1 + --count-runs`` runs, default 10, the
difference over the extra runs): statements on the client, exactly (Steward and bare: Django's query log,
``bench.steward``; the peers: their counting psycopg connections); transactions on the server (``pg_stat_database``
of the contender's own database, exact once its backends have exited) and on the client. Steward's are run_start
plus ``advance``, the whole run, as a peer's count its whole run.

Anything wrong (a failed run, a run stuck for ``--stall-seconds``, an error in the worker's log, a wrong answer)
fails the benchmark with what was found, exit status 1.
"""

# ruff: noqa: E402  (Django must be set up before the models are imported)

import argparse
import contextlib
import importlib.metadata
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

import celery
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, connections

from agents.models import Step
from audit.models import AuditEvent
from bench import steward
from bench import tools as bench_tools  # registers bench.noop here too, so that migrate syncs it to the Tool table
from bench.common import (
    BenchError,
    bench_database_url,
    database_description,
    percentile,
    print_heading,
    print_load,
    print_total,
    target_scope,
    throwaway_database,
    verdict,
)
from bench.peers import Batch, Numbers, peer_batch, peer_counting, peers
from bench.peers.counting import Counted, Server, Tally, database_url, per_run
from bench.worker import Worker, forget_queue, redis_description
from config import celery_app, embedded_redis

POSTGRES_BENCH_DATABASE = "bench_runs"
SQLITE_BENCH_FILE = "bench-runs.sqlite3"
PEERS = ("langgraph-sync", "langgraph-async", "langgraph-async-thread", "dbos", "psycopg")
MIN_ROUNDS = 3
ROUND_NUMBERS = 10**5  # run inputs: round r uses (r + 1) * ROUND_NUMBERS onwards; counting passes 10**7 onwards
# The targets, PostgreSQL: Steward's runs/s against LangGraph's, and its per-step overhead p50.
TARGET_RATIOS = (("langgraph-sync", 1.0), ("langgraph-async", 0.5))
TARGET_OVERHEAD_MS = 2.0
DISTRIBUTIONS = ("langgraph", "langgraph-checkpoint-postgres", "dbos", "psycopg", "SQLAlchemy")


@dataclass
class Contender:
    """One contender: what it is, how it does a batch (``batch(first, count)``) and a counting pass (``counting``,
    see ``bench.peers.counting.per_run``) on its database (``database``: for the server's statistics)."""

    name: str
    about: str
    batch: Callable[[int, int], Batch]
    counting: Callable[[int], Tally]
    database: str | None
    batches: list[Batch] = field(default_factory=list)
    counted: Counted | None = None

    def per_second(self) -> list[float]:
        return [len(batch.run_seconds) / batch.seconds for batch in self.batches]

    def step_ms(self, steps: int, batches: Sequence[Batch] | None = None) -> list[float]:
        chosen = self.batches if batches is None else batches
        return sorted(seconds * 1e3 / steps for batch in chosen for seconds in batch.run_seconds)


# --- the rounds ---------------------------------------------------------------------------------------------------


def run_rounds(contenders: list[Contender], plan: "Plan") -> list[tuple[list[str], float]]:
    """Every contender's batch in each round, in an order rotated by one a round; each round's order and load."""
    rounds = []
    for index in range(plan.rounds):
        shift = index % len(contenders)
        order = contenders[shift:] + contenders[:shift]
        rounds.append(([contender.name for contender in order], os.getloadavg()[0]))
        for contender in order:
            contender.batches.append(contender.batch((index + 1) * ROUND_NUMBERS, plan.runs))
        print(f"round {index + 1} of {plan.rounds} done", file=sys.stderr)
    return rounds


def spread(values: Sequence[float], digits: int = 2) -> str:
    """``median (min-max)``."""
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def figure(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def overheads(runs: Contender, bare: Contender, steps: int) -> list[float]:
    """Per round: Steward's time per step p50 minus the bare task's, ms."""
    return [
        percentile(runs.step_ms(steps, [mine]), 50) - percentile(bare.step_ms(steps, [theirs]), 50)
        for mine, theirs in zip(runs.batches, bare.batches, strict=True)
    ]


def ratios(runs: Contender, other: Contender) -> list[float]:
    """Per round: Steward's runs/s over the other's."""
    return [mine / theirs for mine, theirs in zip(runs.per_second(), other.per_second(), strict=True)]


def print_rounds(contenders: list[Contender], rounds: list[tuple[list[str], float]], steps: int) -> None:
    print("Per round: runs/s, and time per step p50 in ms")
    header = f"{'contender':<24}" + "".join(f"{f'round {n} runs/s':>16}{'p50':>7}" for n in range(1, len(rounds) + 1))
    print(header)
    print("-" * len(header))
    for contender in contenders:
        cells = [
            f"{per_second:>16.1f}{percentile(contender.step_ms(steps, [batch]), 50):>7.2f}"
            for per_second, batch in zip(contender.per_second(), contender.batches, strict=True)
        ]
        print(f"{contender.name:<24}" + "".join(cells))
    for number, (order, load) in enumerate(rounds, start=1):
        print(f"  round {number}: load average {load:.2f} at its start; order {', '.join(order)}")


def print_summary(contenders: list[Contender], steps: int) -> None:
    print()
    print(
        "Over the rounds: runs/s median (min-max); time per step over every round's runs, ms; per run: SQL "
        "statements (BEGIN/COMMIT included), transactions on the server and on the client"
    )
    header = (
        f"{'contender':<24}{'runs/s median (min-max)':>26}{'step p50':>10}{'p90':>8}"
        f"{'statements':>12}{'tx server':>11}{'tx client':>11}"
    )
    print(header)
    print("-" * len(header))
    for contender in contenders:
        step_ms, counted = contender.step_ms(steps), contender.counted
        print(
            f"{contender.name:<24}{spread(contender.per_second(), 1):>26}{percentile(step_ms, 50):>10.2f}"
            f"{percentile(step_ms, 90):>8.2f}{figure(counted.statements if counted else None):>12}"
            f"{figure(counted.server_transactions if counted else None):>11}"
            f"{figure(counted.client_transactions if counted else None):>11}"
        )


def print_ratios(contenders: list[Contender], steps: int) -> dict[str, list[float]]:
    runs, others = contenders[0], contenders[1:]
    print()
    print("Steward / contender, runs/s: median of the rounds' ratios (min-max)")
    found = {}
    for other in others:
        found[other.name] = ratios(runs, other)
        print(f"  steward / {other.name:<24}{spread(found[other.name])}")
    per_step = overheads(runs, contenders[1], steps)
    found["overhead"] = per_step
    print(
        f"Steward's per-step overhead (its time per step p50 minus the bare task's, per round): {spread(per_step)} ms"
    )
    return found


def print_targets(found: dict[str, list[float]], skipped: str) -> None:
    print()
    print(f"Targets (issue 12), PostgreSQL{target_scope('the targets are for PostgreSQL')}")
    for peer, target in TARGET_RATIOS:
        if peer not in found:
            print(f"  runs/s >= {target:.1f} x {peer}: not measured ({skipped or 'not among --peers'})")
            continue
        met = statistics.median(found[peer]) >= target
        print(f"  runs/s >= {target:.1f} x {peer}: {spread(found[peer])} x   {verdict(met)}")
    overhead = found["overhead"]
    met = statistics.median(overhead) <= TARGET_OVERHEAD_MS
    print(f"  per-step overhead p50 <= {TARGET_OVERHEAD_MS:.0f} ms: {spread(overhead)} ms   {verdict(met)}")


def versions() -> str:
    found = []
    for name in DISTRIBUTIONS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{name} {importlib.metadata.version(name)}")
    return ", ".join(found)


def report(setup: "Setup", contenders: list[Contender], rounds: list[tuple[list[str], float]], total: float) -> None:
    plan, worker, steps = setup.plan, setup.worker, 2 * setup.plan.calls + 1
    print_heading(
        "Agent runs against their peers",
        database_description(),
        setup.bench_name,
        f", Celery {celery.__version__}; worker: {worker.pool} pool, concurrency {worker.concurrency}, "
        f"queue {worker.queue}; {redis_description()}",
    )
    print(f"Peers: {versions()}; each on its own throw-away database: {', '.join(setup.peer_databases) or 'none'}")
    print_load((setup.load_at_start, os.getloadavg()[0]))
    print(
        f"The loop: the scripted model calling {bench_tools.TOOL} {plan.calls} times, then answering: {steps} steps a "
        f"run, one worker; {plan.rounds} rounds of {plan.runs} runs per contender, after {plan.warmup} warm-up runs"
    )
    for contender in contenders:
        print(f"  {contender.name:<24}{contender.about}")
    for line in setup.notes:
        print(line)
    print()
    print_rounds(contenders, rounds, steps)
    print_summary(contenders, steps)
    print(
        f"(Counted in a pass of 1 run and one of {1 + plan.count_runs}, the difference over {plan.count_runs}. "
        f"A Steward run wrote {setup.written[0]:.1f} step rows and {setup.written[1]:.1f} audit events. LangGraph "
        "writes in pipelines, where the client cannot tell transactions apart: n/a. DBOS's background threads share "
        "its database: its server figure may include theirs, its client figure is the workflow's thread alone.)"
    )
    print_targets(print_ratios(contenders, steps), "" if setup.server else f"no peers on {connection.vendor}")
    print_total(total)


# --- the run ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    runs: int
    calls: int
    warmup: int
    rounds: int
    count_runs: int
    concurrency: int
    stall_seconds: float
    peers: tuple[str, ...]


def parse_args(argv: Sequence[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        prog="python -m bench.runs",
        description="Benchmark agent runs (scripted model, no-op tool) on a real Celery worker against a bare "
        "Celery task and peers (LangGraph, DBOS, plain psycopg) doing the same loop, in rounds, on throw-away "
        "databases.",
    )
    parser.add_argument("--runs", type=int, default=None, help="runs per contender and round (default 100)")
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS, help=f"rounds, at least {MIN_ROUNDS} (default 3)")
    parser.add_argument("--calls", type=int, default=5, help="tool calls per run: 2 * calls + 1 steps (default 5)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up runs (default 5)")
    parser.add_argument("--count-runs", type=int, default=10, help="extra runs of the counting passes (default 10)")
    parser.add_argument(
        "--peers", default=",".join(PEERS), help=f"comma-separated, or none (default {','.join(PEERS)})"
    )
    parser.add_argument("--concurrency", type=int, default=1, help="Steward's worker processes (default 1: solo)")
    parser.add_argument("--stall-seconds", type=float, default=60.0, help="fail when no run finishes this long")
    parser.add_argument("--quick", action="store_true", help="a tiny run, to check that the benchmark works")
    args = parser.parse_args(argv)
    chosen = tuple(name for name in args.peers.split(",") if name and name != "none")
    plan = Plan(
        runs=args.runs if args.runs is not None else (10 if args.quick else 100),
        calls=args.calls,
        warmup=args.warmup if args.warmup is not None else (2 if args.quick else 5),
        rounds=args.rounds,
        count_runs=2 if args.quick else args.count_runs,
        concurrency=args.concurrency,
        stall_seconds=args.stall_seconds,
        peers=chosen,
    )
    problems = {
        "--runs must be between 1 and 10000": not 1 <= plan.runs <= 10_000,
        f"--rounds must be at least {MIN_ROUNDS}": plan.rounds < MIN_ROUNDS,
        "--calls must be between 1 and 100": not 1 <= plan.calls <= 100,
        "--warmup must be between 0 and 1000": not 0 <= plan.warmup <= 1000,
        "--count-runs must be between 1 and 1000": not 1 <= plan.count_runs <= 1000,
        "--concurrency must be between 1 and 32": not 1 <= plan.concurrency <= 32,
        "--stall-seconds must be positive": plan.stall_seconds <= 0,
        f"--peers: unknown {set(chosen) - set(PEERS)}, known: {', '.join(PEERS)}": not set(chosen) <= set(PEERS),
    }
    for problem, found in problems.items():
        if found:
            parser.error(problem)
    return plan


@dataclass
class Setup:
    """What a run of the benchmark has set up, for the contenders and the report."""

    plan: Plan
    bench_name: str
    worker: Worker
    operator: User
    load_at_start: float
    server: Server | None = None
    peer_databases: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    written: tuple[float, float] = (0.0, 0.0)  # a counted Steward run's step rows and audit events
    counted: list[Any] = field(default_factory=list)  # the counted Steward runs' ids, checked after counting


def steward_contenders(setup: Setup) -> list[Contender]:
    """Steward's runs and the bare task, on the worker (counted in this process, see ``bench.steward``)."""
    plan, worker, numbers = setup.plan, setup.worker, Numbers(10**7)
    database = setup.bench_name if setup.server else None

    def runs(first: int, count: int) -> Batch:
        return steward.run_phase("runs", worker, setup.operator, count, first, plan.calls, plan.stall_seconds)

    def bare(first: int, count: int) -> Batch:
        return steward.bare_phase("bare tasks", worker, count, first, plan.calls, plan.stall_seconds)

    about = f"Steward: run_start by the Operator, advanced by the Celery worker ({worker.pool} pool)"
    return [
        Contender("steward", about, runs, steward.steward_counting(setup.operator, numbers, setup.counted), database),
        Contender(
            "bare",
            "a bare Celery task on the same worker: the same model and tool, one Django insert per step",
            bare,
            steward.bare_counting(plan.calls, numbers),
            database,
        ),
    ]


def peer_contenders(setup: Setup, stack: contextlib.ExitStack) -> list[Contender]:
    """The chosen peers, each with a throw-away database of its own on the configured server."""
    if not setup.plan.peers:
        return []
    if setup.server is None:
        setup.notes.append(
            f"The peers need PostgreSQL: skipped on {connection.vendor} (set DATABASE_URL=postgres://… to compare)."
        )
        return []
    contenders = []
    for name in setup.plan.peers:
        kind = peers()[name]
        database = stack.enter_context(setup.server.database(f"bench_runs_{name.replace('-', '_')}"))
        setup.peer_databases.append(database)
        url = database_url(settings.DATABASE_URL, database)
        counting = peer_counting(kind, url, setup.plan.calls, Numbers(10**7))
        contenders.append(
            Contender(name, kind.about, peer_batch(kind, url, setup.plan.calls, setup.plan.warmup), counting, database)
        )
    return contenders


def count_all(setup: Setup, contenders: list[Contender]) -> None:
    """Every contender's statements and transactions a run (the worker has stopped); Steward's runs checked."""
    events_before = AuditEvent.objects.count()
    connections.close_all()  # the counting passes begin with nothing connected to the databases
    for contender in contenders:
        server = setup.server if contender.database else None
        contender.counted = per_run(contender.counting, setup.plan.count_runs, server, contender.database or "")
    steward.check_runs("the counted runs", setup.counted, setup.plan.calls)
    steps = Step.objects.filter(run__in=setup.counted).count()
    events = AuditEvent.objects.count() - events_before  # the bare task writes none
    setup.written = (steps / len(setup.counted), events / len(setup.counted))


def measure(setup: Setup, queue: str, logs: Path) -> tuple[list[Contender], list[tuple[list[str], float]]]:
    """On the throw-away databases: the worker, the warm-up, the rounds, the counting."""
    plan, worker = setup.plan, setup.worker
    worker.wait_until_ready()
    if plan.warmup:
        steward.run_phase("warm-up runs", worker, setup.operator, plan.warmup, 10**6, plan.calls, plan.stall_seconds)
        steward.bare_phase("warm-up bare", worker, plan.warmup, 10**6, plan.calls, plan.stall_seconds)
    with contextlib.ExitStack() as stack:
        contenders = steward_contenders(setup) + peer_contenders(setup, stack)
        rounds = run_rounds(contenders, plan)
        worker.stop()
        problems = worker.problems()
        if problems:
            listed = "\n  ".join(f"{count} x {line}" for line, count in problems.most_common(10))
            raise BenchError(f"the worker logged errors (every run still succeeded):\n  {listed}")
        count_all(setup, contenders)
    return contenders, rounds


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse_args(argv)
    run_started, load_at_start = time.perf_counter(), os.getloadavg()[0]
    queue = f"bench-runs-{uuid.uuid4().hex[:8]}"
    celery_app.conf.task_default_queue = queue  # run_start's run_advance_task.delay goes to our worker
    settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
    redis_process = None
    if settings.REDIS_EMBEDDED and not embedded_redis.is_running(settings.REDIS_SOCKET):
        redis_process = embedded_redis.start(settings.REDIS_SOCKET)
    logs = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    worker: Worker | None = None
    try:
        with throwaway_database(POSTGRES_BENCH_DATABASE, SQLITE_BENCH_FILE) as bench_name:
            operator = steward.prepare(plan.calls)
            connections.close_all()
            worker = Worker(bench_database_url(bench_name), queue, plan.concurrency, logs)
            server = Server(settings.DATABASE_URL) if connection.vendor == "postgresql" else None
            setup = Setup(plan, bench_name, worker, operator, load_at_start, server)
            if plan.concurrency > 1:
                setup.notes.append(f"Steward's worker has {plan.concurrency} processes, the peers one: not alike.")
            try:
                contenders, rounds = measure(setup, queue, logs)
            finally:
                if server is not None:
                    server.close()
            report(setup, contenders, rounds, time.perf_counter() - run_started)
    except BenchError:
        if worker is not None:
            worker.stop()
            print(f"\nThe worker's log, last lines:\n{worker.log_tail()}", file=sys.stderr)
        raise
    finally:
        if worker is not None:
            worker.stop()
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
