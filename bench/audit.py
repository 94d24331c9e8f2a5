"""Benchmark of the audit trail: chained appends against plain inserts, and verification of the chain.

Run as ``python -m bench.audit`` (``make bench-audit``). It uses the database that ``config.settings``
configures (``DATABASE_URL``: PostgreSQL, else SQLite under ``var/``), but never its audit trail: like
Django's test runner it creates and migrates a throw-away database next to it (``bench_steward_<random>`` on
PostgreSQL, ``var/bench-<random>.sqlite3`` on SQLite: names apart from the test suite's, and unique to the run,
so that two people benchmarking on one server never drop each other's) and drops it at the end.

What is measured, in this order, on that one database:

1. Chained appends: 1 writer process, then 8 concurrent writer processes (forked, each with its own
   connection). Every writer calls ``audit_record`` with a small, realistic ``details`` dict, each call in
   its own ``transaction.atomic()``, so each event pays for the chain lock, the read of the chain's end,
   the hashing, the insert and the commit. Writers connect and prepare first, then start together at a
   barrier; the figure is all their events over the wall time from the first start to the last finish.
2. Verification: the chain is topped up to ``--verify-events`` valid chained events (built in Python with
   ``integrity.event_hash``, ``details_digest`` and ``Sealer``, inserted with ``bulk_create`` in batches,
   and a checkpoint of the new head), then ``audit_chain_verify`` is timed end to end: reading every event,
   recomputing every hash, details digest and seal, comparing the checkpoints in the database and in the
   external file, and recording the verification as one more event. The run fails if the chain does not verify.
3. Plain inserts, the baseline: the same writer counts and row counts, each row inserted in its own
   transaction into the same table with the same ``objects.create`` as ``audit_record``, but with no lock,
   no read of the chain's end and no hashing (rows and their values are prepared before the barrier). They
   use disjoint sequence numbers far above the chain and dummy hashes, which break the chain, so they run
   last; by then the table also holds the verification's 100,000 events, which makes no noticeable
   difference to an insert.

Checkpoints the benchmark writes (every ``AUDIT_CHECKPOINT_EVERY_EVENTS`` appends, as in production) go to a
file sink in a temporary directory, never to the configured sink, which belongs to the real trail.

Options: ``--events N`` (1-writer run, default 2000), ``--writers W`` and ``--events-per-writer N``
(concurrent run, default 8 and 500), ``--verify-events N`` (default 100000), ``--quick`` (a tiny run).

The report compares the figures with the spec's targets for PostgreSQL on a 2-core machine: at least
2,000 appends/s with 8 writers and at least 100,000 events/s verified. A figure below its target is
reported, not fatal: the exit status is non-zero only when something fails.
"""

# ruff: noqa: E402  (Django must be set up before the models are imported)

import argparse
import contextlib
import multiprocessing
import os
import queue
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from audit import integrity
from audit.context import Actor
from audit.models import AuditEvent
from audit.services import Target, audit_chain_verify, audit_checkpoint_write, audit_record
from bench.common import (
    BenchError,
    database_description,
    print_heading,
    print_total,
    target_scope,
    throwaway_database,
    verdict,
)

POSTGRES_BENCH_DATABASE = "bench_steward"
SQLITE_BENCH_FILE = "bench.sqlite3"
TARGET_APPENDS_PER_SECOND = 2_000  # with 8 writers, PostgreSQL, 2 cores
TARGET_VERIFIED_PER_SECOND = 100_000  # PostgreSQL, 2 cores
TOP_UP_BATCH = 5_000
PLAIN_SEQUENCE_BASE = 10**9  # plain rows: base + run * 10**8 + writer * 10**6 + i, far above the chain
MAX_EVENTS_PER_WRITER = 10**6 - 1
PASS_BELOW = ("PASS", "BELOW")  # the words of a figure against its target
BARRIER_TIMEOUT = 120.0


@dataclass(frozen=True)
class WriterOutcome:
    writer: int
    events: int
    started: float
    finished: float
    error: str | None = None


@dataclass(frozen=True)
class Throughput:
    writers: int
    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class AppendRow:
    writers: int
    chained: Throughput
    plain: Throughput

    @property
    def ratio(self) -> float:
        return self.chained.per_second / self.plain.per_second


@dataclass(frozen=True)
class VerifyFigures:
    events: int
    seconds: float
    verify_seconds: float  # inside integrity.verify: fetching and checking, without recording the result
    topped_up: int
    top_up_seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


# --- what one event looks like -------------------------------------------------------------------


def event_details(writer: int, index: int) -> dict[str, Any]:
    """A small details dict like the ones agent runs record: a tool call with its outcome."""
    return {
        "tool": "web_search",
        "step": index,
        "writer": writer,
        "status": "succeeded",
        "latency_ms": 180 + index % 97,
        "tokens": {"prompt": 812 + index % 50, "completion": 164},
        "query": f"quarterly report section {index % 13}",
    }


def event_target(writer: int, index: int) -> Target:
    return Target(type="agents.agentrun", id=str(writer * 10**6 + index // 20), label=f"bench run {writer}")


ACTION = "agent.tool.called"


# --- writer processes ----------------------------------------------------------------------------


def chained_work(writer: int, count: int) -> Callable[[], None]:
    """The appends of one writer: ``count`` calls of ``audit_record``, each in its own transaction."""
    actor = Actor(type="agent", id=str(writer), label=f"bench-agent-{writer}")
    correlation_id = uuid.uuid4()

    def work() -> None:
        for index in range(count):
            with transaction.atomic():
                audit_record(
                    actor=actor,
                    action=ACTION,
                    target=event_target(writer, index),
                    details=event_details(writer, index),
                    correlation_id=correlation_id,
                )

    return work


def plain_work(run: int, writer: int, count: int) -> Callable[[], None]:
    """The same rows inserted one per transaction, but outside the chain: no lock, no chain read, no hashing."""
    actor = Actor(type="agent", id=str(writer), label=f"bench-agent-{writer}")
    correlation_id = uuid.uuid4()
    rows: list[dict[str, Any]] = []
    for index in range(count):
        sequence = PLAIN_SEQUENCE_BASE + run * 10**8 + writer * 10**6 + index
        target = event_target(writer, index)
        details = integrity.normalise_details(event_details(writer, index))
        rows.append(
            {
                "sequence": sequence,
                "created_at": timezone.now(),
                "actor_type": actor.type,
                "actor_id": actor.id,
                "actor_label": actor.label,
                "action": ACTION,
                "target_type": target.type,
                "target_id": target.id,
                "target_label": target.label,
                "details": details,
                "details_digest": integrity.details_digest(details),
                "correlation_id": correlation_id,
                "prev_hash": integrity.GENESIS_HASH,
                "hash": f"{sequence:064x}",
            }
        )

    def work() -> None:
        for row in rows:
            with transaction.atomic():
                AuditEvent.objects.create(**row)

    return work


def writer_main(
    kind: str, run: int, writer: int, count: int, barrier: Barrier, results: "Queue[WriterOutcome]"
) -> None:
    """Body of one forked writer: connect and prepare, wait for the others, write, report."""
    try:
        connection.ensure_connection()
        work = chained_work(writer, count) if kind == "chained" else plain_work(run, writer, count)
        barrier.wait(timeout=BARRIER_TIMEOUT)
        started = time.perf_counter()
        work()
        finished = time.perf_counter()
        results.put(WriterOutcome(writer=writer, events=count, started=started, finished=finished))
    except BaseException:
        barrier.abort()
        results.put(WriterOutcome(writer=writer, events=0, started=0.0, finished=0.0, error=traceback.format_exc()))
    finally:
        connections.close_all()


def run_writers(kind: str, run: int, writers: int, per_writer: int) -> Throughput:
    """Fork ``writers`` processes that each write ``per_writer`` rows; time them from release to last finish."""
    context = multiprocessing.get_context("fork")
    connections.close_all()  # children must open their own connections, never share the parent's
    barrier = context.Barrier(writers + 1)
    results: Queue[WriterOutcome] = context.Queue()
    processes = [
        context.Process(
            target=writer_main,
            args=(kind, run, writer, per_writer, barrier, results),
            name=f"bench-{kind}-{writer}",
        )
        for writer in range(writers)
    ]
    for process in processes:
        process.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a writer failed to get ready: it reports why below
        barrier.wait(timeout=BARRIER_TIMEOUT)
    outcomes: list[WriterOutcome] = []
    while len(outcomes) < writers:
        try:
            outcomes.append(results.get(timeout=1.0))
        except queue.Empty:
            if not any(process.is_alive() for process in processes):
                break
    for process in processes:
        process.join()
    errors = [outcome.error for outcome in outcomes if outcome.error]
    if errors:
        raise BenchError(f"{len(errors)} {kind} writer(s) failed; the first:\n{errors[0]}")
    if len(outcomes) < writers:
        codes = [process.exitcode for process in processes]
        raise BenchError(f"only {len(outcomes)} of {writers} {kind} writers reported (exit codes {codes})")
    seconds = max(outcome.finished for outcome in outcomes) - min(outcome.started for outcome in outcomes)
    return Throughput(writers=writers, events=sum(outcome.events for outcome in outcomes), seconds=seconds)


# --- verification --------------------------------------------------------------------------------


def chain_end() -> tuple[int, str]:
    last = AuditEvent.objects.order_by("-sequence").values_list("sequence", "hash").first()
    return last or (0, integrity.GENESIS_HASH)


def top_up_chain(total: int) -> int:
    """Append valid chained events, built here in bulk, until the chain holds ``total``; return how many."""
    sequence, prev_hash = chain_end()
    if AuditEvent.objects.count() != sequence:
        raise BenchError(f"the chain ends at event {sequence} but holds {AuditEvent.objects.count()} events")
    actor = Actor(type="agent", id="bulk", label="bench-agent-bulk")
    correlation_id = uuid.uuid4()
    seal = integrity.Sealer(integrity.seal_key(settings.AUDIT_CHECKPOINT_KEY))
    added = 0
    while sequence < total:
        batch: list[AuditEvent] = []
        for _ in range(min(TOP_UP_BATCH, total - sequence)):
            sequence += 1
            target = event_target(99, sequence)
            details = integrity.normalise_details(event_details(99, sequence))
            values: dict[str, Any] = {
                "sequence": sequence,
                "created_at": timezone.now(),
                "actor_type": actor.type,
                "actor_id": actor.id,
                "actor_label": actor.label,
                "action": ACTION,
                "target_type": target.type,
                "target_id": target.id,
                "target_label": target.label,
                "details_digest": integrity.details_digest(details),
                "correlation_id": correlation_id,
                "prev_hash": prev_hash,
            }
            values["hash"] = prev_hash = integrity.event_hash(values)
            values["seal"] = seal(integrity.seal_text(values))
            batch.append(AuditEvent(details=details, **values))
        with transaction.atomic():
            AuditEvent.objects.bulk_create(batch)
        added += len(batch)
    if added:
        audit_checkpoint_write(actor=Actor.system("bench"))  # what the append path would have signed
    return added


def measure_verification(total: int) -> VerifyFigures:
    started = time.perf_counter()
    topped_up = top_up_chain(total)
    top_up_seconds = time.perf_counter() - started
    started = time.perf_counter()
    result = audit_chain_verify(actor=Actor.system("bench"))
    seconds = time.perf_counter() - started
    if not result.ok:
        problems = "\n  ".join(result.problems[:10])
        raise BenchError(f"the chain built by the benchmark does not verify:\n  {problems}")
    if result.events_checked < total:
        raise BenchError(f"verification checked {result.events_checked} events, expected at least {total}")
    return VerifyFigures(
        events=result.events_checked,
        seconds=seconds,
        verify_seconds=result.seconds,
        topped_up=topped_up,
        top_up_seconds=top_up_seconds,
    )


# --- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    single_events: int
    multi_writers: int
    multi_events: int
    verify_events: int


def parse_args(argv: Sequence[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        prog="python -m bench.audit",
        description="Benchmark audit appends (chained vs plain inserts) and chain verification "
        "on a throw-away copy of the configured database.",
    )
    parser.add_argument("--events", type=int, default=None, help="events for the 1-writer run (default 2000)")
    parser.add_argument(
        "--events-per-writer", type=int, default=None, help="events per writer in the concurrent run (default 500)"
    )
    parser.add_argument("--writers", type=int, default=8, help="writers in the concurrent run (default 8)")
    parser.add_argument("--verify-events", type=int, default=None, help="chain length to verify (default 100000)")
    parser.add_argument("--quick", action="store_true", help="a tiny run, to check that the benchmark works")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    plan = Plan(
        single_events=args.events if args.events is not None else (100 if quick else 2_000),
        multi_writers=args.writers,
        multi_events=args.events_per_writer if args.events_per_writer is not None else (25 if quick else 500),
        verify_events=args.verify_events if args.verify_events is not None else (5_000 if quick else 100_000),
    )
    for name, value in (("--events", plan.single_events), ("--events-per-writer", plan.multi_events)):
        if not 1 <= value <= MAX_EVENTS_PER_WRITER:
            parser.error(f"{name} must be between 1 and {MAX_EVENTS_PER_WRITER}")
    if not 1 <= plan.multi_writers <= 99:
        parser.error("--writers must be between 1 and 99")
    if plan.verify_events < 1:
        parser.error("--verify-events must be at least 1")
    return plan


def report(database: str, bench_name: str, appends: list[AppendRow], verification: VerifyFigures, total: float) -> None:
    print_heading("Audit trail benchmark", database, bench_name)
    print()
    print("Appends, one event per transaction")
    header = (
        f"{'vendor':<11}{'writers':>8}{'events':>8}{'chained s':>11}{'chained/s':>11}"
        f"{'plain s':>9}{'plain/s':>10}{'chained/plain':>15}"
    )
    print(header)
    print("-" * len(header))
    for row in appends:
        print(
            f"{connection.vendor:<11}{row.writers:>8}{row.chained.events:>8}{row.chained.seconds:>11.2f}"
            f"{row.chained.per_second:>11,.0f}{row.plain.seconds:>9.2f}{row.plain.per_second:>10,.0f}"
            f"{row.ratio:>15.2f}"
        )
    print()
    print("Verification, audit_chain_verify end to end")
    header = f"{'vendor':<11}{'events':>9}{'seconds':>9}{'events/s':>10}{'of which verify() s':>21}"
    print(header)
    print("-" * len(header))
    print(
        f"{connection.vendor:<11}{verification.events:>9,}{verification.seconds:>9.2f}"
        f"{verification.per_second:>10,.0f}{verification.verify_seconds:>21.2f}"
    )
    print(f"(chain topped up with {verification.topped_up:,} bulk-built events in {verification.top_up_seconds:.1f} s)")
    print()
    print(f"Spec targets, PostgreSQL on a 2-core machine{target_scope('targets are for PostgreSQL')}")
    multi = next((row for row in appends if row.writers == 8), None)
    if multi is not None:
        value = multi.chained.per_second
        print(
            f"  appends with 8 writers   >= {TARGET_APPENDS_PER_SECOND:>7,}/s: {value:>9,.0f}/s  "
            f"{verdict(value >= TARGET_APPENDS_PER_SECOND, PASS_BELOW)}"
        )
    else:
        print(f"  appends with 8 writers   >= {TARGET_APPENDS_PER_SECOND:>7,}/s: not measured (--writers is not 8)")
    value = verification.per_second
    print(
        f"  events verified          >= {TARGET_VERIFIED_PER_SECOND:>7,}/s: {value:>9,.0f}/s  "
        f"{verdict(value >= TARGET_VERIFIED_PER_SECOND, PASS_BELOW)}"
    )
    print_total(total)


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse_args(argv)
    run_started = time.perf_counter()
    with throwaway_database(POSTGRES_BENCH_DATABASE, SQLITE_BENCH_FILE) as bench_name:
        database = database_description()
        chained = [
            run_writers("chained", 0, 1, plan.single_events),
            run_writers("chained", 1, plan.multi_writers, plan.multi_events),
        ]
        verification = measure_verification(max(plan.verify_events, chain_end()[0]))
        plain = [
            run_writers("plain", 0, 1, plan.single_events),
            run_writers("plain", 1, plan.multi_writers, plan.multi_events),
        ]
        appends = [
            AppendRow(writers=chain.writers, chained=chain, plain=base)
            for chain, base in zip(chained, plain, strict=True)
        ]
        report(database, bench_name, appends, verification, time.perf_counter() - run_started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
