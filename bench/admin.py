"""Benchmark of the console over large tables: changelists and detail pages with a million audit events.

Run as ``python -m bench.admin`` (``make bench-admin``). Like ``bench.audit`` it never touches the dev or test
data: it creates and migrates a throw-away database next to the configured one (``bench_admin_<random>`` on
PostgreSQL, ``var/bench-admin-<random>.sqlite3`` on SQLite) and drops it at the end, even when the run fails.

What is loaded, in bulk (``COPY`` on PostgreSQL, batched inserts on SQLite), then ``ANALYZE``d as autovacuum
would after such a load:

- ``--events`` audit events (default 1,000,000): a year of activity, ascending ``created_at``, a mix of actor
  types (agent runs, users, API clients, the system) and of ~20 actions in 6 namespaces, small ``details``.
  Every row is a valid row (columns, digests of the details, unique hashes), but the rows are not a valid hash
  chain: the pages read the trail and never verify it, so chaining a million events would only slow the load.
- ``--runs`` agent runs (default 100,000) of 5 agents, each with 1 to 5 steps (3 on average), and
  ``--conversations`` conversations (default 100,000) of 3 personas with 3 messages each, both over the same year.
  The agents, personas and their versions are written directly (the pages only read them).

What is measured: a superuser is logged in with ``django.test.Client`` (the whole Django stack, middleware,
session, templates; no network or WSGI server), and each page is requested ``--requests`` times (default 30)
after 3 warm-up requests; the report gives p50, p95 and max per page, and the queries a request of each page
sends (counted on one more, untimed, request). Detail pages pick a different random row on every request. The
baseline, in the same run: ``/healthz`` (Django's stack alone) and the console's chrome (the password change
form: session, user, the menu and base template, what every console page pays). Shown for information, outside
the target: a text search of the trail and the admin index (the dashboard). The target, for PostgreSQL: p95
below 300 ms on every list and detail page. ``--export`` also times the audit trail's CSV export end to end
(every event, streamed). Anything else running on the machine is in the figures: the report gives the load
average at the start and the end.

Static files are served plainly (as the tests do), so no ``collectstatic`` manifest is needed.
"""

# ruff: noqa: E402  (Django must be set up before the models are imported)

import argparse
import datetime as dt
import os
import random
import re
import resource
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, models, transaction
from django.db.models.fields import AutoFieldMixin
from django.http import StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import Run, RunStatus, Step, StepKind, StepStatus
from audit import integrity
from audit.models import AuditEvent
from bench.common import (
    BenchError,
    database_description,
    percentile,
    print_heading,
    print_load,
    print_total,
    target_scope,
    throwaway_database,
    verdict,
)
from config.changelists import BoundedCountPaginator, LargeTableAdmin
from governance.models import GovernedObject, Label, Version
from personas.models import Conversation, ConversationStatus, Message

POSTGRES_BENCH_DATABASE = "bench_admin"
SQLITE_BENCH_FILE = "bench-admin.sqlite3"
TARGET_P95_MS = 300.0  # PostgreSQL, every list and detail page
BATCH = 20_000  # rows per executemany on SQLite
WARMUP_REQUESTS = 3
RESULT_COUNT = re.compile(r'<span class="result-count">([^<]*)</span>')  # templates/admin/pagination.html
HOST = "localhost"


# --- bulk loading -------------------------------------------------------------------------------------------------


def _text(value: Any) -> Any:
    """A value as COPY sends it: JSON as its canonical text (what the audit trail stores); the rest as psycopg
    adapts it."""
    if isinstance(value, dict | list):
        return integrity.canonical_json(value)
    return value


def bulk_load(model: type[models.Model], rows: Iterable[dict[str, Any]]) -> int:
    """Insert ``rows`` (field name to value; fields left out take their default) into ``model``'s table.

    PostgreSQL: one ``COPY ... FROM STDIN`` (psycopg's copy). SQLite: ``executemany`` in batches of ``BATCH``,
    with the values prepared by the fields as the ORM would. Auto-increment keys are left to the database.
    """
    fields = [f for f in model._meta.concrete_fields if not isinstance(f, AutoFieldMixin)]
    defaults = {f.name: f.get_default() for f in fields}
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    count = 0
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            prepared_defaults = {f.name: _text(f.get_db_prep_save(defaults[f.name], connection)) for f in fields}
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row([_text(row[f.name]) if f.name in row else prepared_defaults[f.name] for f in fields])
                    count += 1
            return count
        sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
        batch: list[list[Any]] = []
        for row in rows:
            batch.append([f.get_db_prep_save(row.get(f.name, defaults[f.name]), connection) for f in fields])
            if len(batch) == BATCH:
                cursor.executemany(sql, batch)
                count += len(batch)
                batch.clear()
        cursor.executemany(sql, batch)
        return count + len(batch)


ACTIONS = {  # namespace: (share of events, actions)
    "agent": (
        0.55,
        [
            "agent.run.started",
            "agent.run.succeeded",
            "agent.run.failed",
            "agent.tool.called",
            "agent.approval.requested",
            "agent.approval.decided",
        ],
    ),
    "persona": (
        0.25,
        [
            "persona.conversation.started",
            "persona.message.sent",
            "persona.conversation.closed",
            "persona.conversation.escalated",
        ],
    ),
    "auth": (0.08, ["auth.login", "auth.logout", "auth.login_failed", "auth.token.issued"]),
    "governance": (0.06, ["governance.version.submitted", "governance.review.decided", "governance.release.created"]),
    "admin": (0.04, ["admin.object.added", "admin.object.changed"]),
    "audit": (0.02, ["audit.chain.verified", "audit.checkpoint.written"]),
}
ACTOR_OF = {
    "agent": "agent_run",
    "persona": "system",
    "auth": "user",
    "governance": "user",
    "admin": "user",
    "audit": "system",
}
FILTERED_NAMESPACE, FILTERED_ACTOR_TYPE = "governance", "user"


def audit_rows(count: int, start: dt.datetime, span: dt.timedelta, after: int) -> Iterator[dict[str, Any]]:
    """``count`` events over ``span`` from ``start``, numbered from ``after + 1``. Valid rows, not a valid chain
    (see the module's docstring)."""
    rng = random.Random(1)  # noqa: S311  (sample data, not secrets)
    namespaces = list(ACTIONS)
    weights = [ACTIONS[n][0] for n in namespaces]
    step = span / max(count, 1)
    correlation_id = uuid.uuid4()
    for sequence in range(after + 1, after + count + 1):
        namespace = rng.choices(namespaces, weights)[0]
        action = rng.choice(ACTIONS[namespace][1])
        actor_type = ACTOR_OF[namespace]
        if actor_type == "user" and rng.random() < 0.3:
            actor_type = "api_client"
        if sequence % 5 == 1:
            correlation_id = uuid.uuid4()
        details = {"n": sequence, "status": "ok", "latency_ms": 100 + sequence % 400}
        actor_id = str(rng.randrange(1, 500))
        yield {
            "sequence": sequence,
            "created_at": start + step * (sequence - after),
            "actor_type": actor_type,
            "actor_id": actor_id,
            "actor_label": f"{actor_type}-{actor_id}",
            "action": action,
            "target_type": f"{namespace}.object",
            "target_id": str(rng.randrange(1, 100_000)),
            "target_label": f"{namespace} object {sequence % 997}",
            "details": details,
            "details_digest": integrity.details_digest(details),
            "correlation_id": correlation_id,
            "prev_hash": f"{sequence - 1:064x}",
            "hash": f"{sequence:064x}",
        }


@dataclass
class Cast:
    superuser: User
    users: list[User]
    agents: list[tuple[GovernedObject, Version]]
    personas: list[tuple[GovernedObject, Version]]


def prepare_cast() -> Cast:
    superuser = User.objects.create_superuser("bench-admin", email="", password=None)
    users = [User.objects.create_user(f"bench-user-{i}") for i in range(20)]
    for name in ("staging", "production"):
        Label.objects.get_or_create(name=name)

    def governed(kind: str, slug: str) -> tuple[GovernedObject, Version]:
        obj = GovernedObject.objects.create(kind=kind, slug=slug, name=slug.replace("-", " ").title())
        version = Version.objects.create(
            object=obj, number=1, name=obj.name, spec={}, checksum="0" * 64, author=superuser, status="approved"
        )
        return obj, version

    agents = [governed("agent", f"bench-agent-{i}") for i in range(5)]
    personas = [governed("persona", f"bench-persona-{i}") for i in range(3)]
    return Cast(superuser=superuser, users=users, agents=agents, personas=personas)


RUN_STATUSES = [RunStatus.SUCCEEDED] * 8 + [RunStatus.FAILED, RunStatus.CANCELLED]


def run_rows(cast: Cast, count: int, start: dt.datetime, span: dt.timedelta, ids: list[uuid.UUID]) -> Iterator[dict]:
    rng = random.Random(2)  # noqa: S311
    step = span / max(count, 1)
    for index in range(count):
        agent, version = cast.agents[index % len(cast.agents)]
        created = start + step * index
        run_id = uuid.uuid4()
        ids.append(run_id)
        yield {
            "id": run_id,
            "agent": agent.pk,
            "version": version.pk,
            "label": "production",
            "requested_by": rng.choice(cast.users).pk,
            "correlation_id": uuid.uuid4(),
            "status": rng.choice(RUN_STATUSES),
            "input": {"question": f"where is order {index}"},
            "result": {"answer": "shipped"},
            "steps_used": 3,
            "tokens_used": 900,
            "cost_used": "0.0042",
            "created_at": created,
            "started_at": created,
            "finished_at": created + dt.timedelta(seconds=2),
            "updated_at": created + dt.timedelta(seconds=2),
        }


def step_rows(run_ids: list[uuid.UUID], start: dt.datetime, span: dt.timedelta) -> Iterator[dict[str, Any]]:
    rng = random.Random(3)  # noqa: S311
    step = span / max(len(run_ids), 1)
    for index, run_id in enumerate(run_ids):
        began = start + step * index
        for seq in range(1, rng.randint(1, 5) + 1):
            kind = StepKind.LLM_CALL if seq % 2 else StepKind.TOOL_CALL
            yield {
                "run": run_id,
                "seq": seq,
                "kind": kind,
                "status": StepStatus.SUCCEEDED,
                "arguments": {"order": index} if kind == StepKind.TOOL_CALL else None,
                "result": {"ok": True},
                "detail": {"tool_name": "lookup"} if kind == StepKind.TOOL_CALL else {},
                "tokens": 300,
                "cost": "0.0014",
                "started_at": began,
                "finished_at": began + dt.timedelta(seconds=0.5),
            }


def conversation_rows(
    cast: Cast, count: int, start: dt.datetime, span: dt.timedelta, ids: list[uuid.UUID]
) -> Iterator[dict[str, Any]]:
    rng = random.Random(4)  # noqa: S311
    step = span / max(count, 1)
    for index in range(count):
        persona, version = cast.personas[index % len(cast.personas)]
        created = start + step * index
        conversation_id = uuid.uuid4()
        ids.append(conversation_id)
        status = ConversationStatus.CLOSED if rng.random() < 0.9 else ConversationStatus.ACTIVE
        yield {
            "id": conversation_id,
            "persona": persona.pk,
            "version": version.pk,
            "label": "production",
            "client": rng.choice(cast.users).pk,
            "status": status,
            "created_at": created,
            "updated_at": created,
            "closed_at": created + dt.timedelta(minutes=5) if status == ConversationStatus.CLOSED else None,
        }


def message_rows(conversation_ids: list[uuid.UUID], per: int, start: dt.datetime, span: dt.timedelta) -> Iterator[dict]:
    step = span / max(len(conversation_ids), 1)
    for index, conversation_id in enumerate(conversation_ids):
        for seq in range(1, per + 1):
            yield {
                "conversation": conversation_id,
                "seq": seq,
                "role": "user" if seq % 2 else "persona",
                "text": f"message {seq} of conversation {index}",
                "flags": [],
                "created_at": start + step * index + dt.timedelta(seconds=seq),
            }


@dataclass(frozen=True)
class Loaded:
    events: int
    runs: int
    steps: int
    conversations: int
    messages: int
    seconds: float
    run_ids: list[uuid.UUID]
    conversation_ids: list[uuid.UUID]


def load(plan: "Plan", cast: Cast) -> Loaded:
    started = time.perf_counter()
    span = dt.timedelta(days=365)
    start = timezone.now() - span
    # After the events already recorded (the tool sync after migrate, the cast): the sequence is the key.
    after = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
    events = bulk_load(AuditEvent, audit_rows(plan.events, start, span, after))
    run_ids: list[uuid.UUID] = []
    runs = bulk_load(Run, run_rows(cast, plan.runs, start, span, run_ids))
    steps = bulk_load(Step, step_rows(run_ids, start, span))
    conversation_ids: list[uuid.UUID] = []
    conversations = bulk_load(Conversation, conversation_rows(cast, plan.conversations, start, span, conversation_ids))
    messages = bulk_load(Message, message_rows(conversation_ids, plan.messages, start, span))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return Loaded(
        events, runs, steps, conversations, messages, time.perf_counter() - started, run_ids, conversation_ids
    )


# --- the pages ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    name: str
    url: Callable[[random.Random], str]
    role: str = "target"  # "baseline", or "info": measured and shown, outside the target (see the report)


@dataclass(frozen=True)
class Timing:
    page: Page
    ms: list[float]  # sorted
    queries: int
    count_label: str

    def percentile(self, share: float) -> float:
        """Nearest-rank percentile."""
        return percentile(self.ms, share)


def pages(loaded: Loaded) -> list[Page]:
    # What the date filter's "Past 7 days" link sends.
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    past_week = urlencode(
        {"created_at__gte": str(today - dt.timedelta(days=7)), "created_at__lt": str(today + dt.timedelta(days=1))}
    )
    filtered = urlencode({"namespace": FILTERED_NAMESPACE, "actor_type__exact": FILTERED_ACTOR_TYPE})
    last_page = BoundedCountPaginator.count_limit // LargeTableAdmin.list_per_page  # the deepest page linked
    return [
        Page("/healthz", lambda rng: "/healthz", role="baseline"),
        Page("console chrome", lambda rng: "/admin/password_change/", role="baseline"),
        Page("audit list", lambda rng: "/admin/audit/auditevent/"),
        Page("audit list, filtered", lambda rng: f"/admin/audit/auditevent/?{filtered}"),
        Page("audit list, past week", lambda rng: f"/admin/audit/auditevent/?{past_week}"),
        Page("audit list, page 100", lambda rng: "/admin/audit/auditevent/?p=100"),
        Page("audit list, last page", lambda rng: f"/admin/audit/auditevent/?p={last_page}"),
        Page("audit detail", lambda rng: f"/admin/audit/auditevent/{rng.randint(1, loaded.events)}/change/"),
        Page("run list", lambda rng: "/admin/agents/run/"),
        Page("run list, filtered", lambda rng: "/admin/agents/run/?status__exact=failed&label__exact=production"),
        Page("run detail", lambda rng: f"/admin/agents/run/{rng.choice(loaded.run_ids)}/change/"),
        Page("conversation list", lambda rng: "/admin/personas/conversation/"),
        Page(
            "conversation detail",
            lambda rng: f"/admin/personas/conversation/{rng.choice(loaded.conversation_ids)}/change/",
        ),
        Page("audit search (text)", lambda rng: "/admin/audit/auditevent/?q=governance+object+5", role="info"),
        Page("admin index (dashboard)", lambda rng: "/admin/", role="info"),
    ]


def measure(client: Client, page: Page, requests: int) -> Timing:
    rng = random.Random(page.name)  # noqa: S311
    for _ in range(WARMUP_REQUESTS):
        check(page, client.get(page.url(rng)))
    timings = []
    for _ in range(requests):
        url = page.url(rng)
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        check(page, response)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(page.url(rng))
    shown = RESULT_COUNT.search(response.content.decode())
    label = shown.group(1) if shown else ""
    return Timing(page=page, ms=sorted(timings), queries=len(queries.captured_queries), count_label=label)


def check(page: Page, response: Any) -> None:
    if response.status_code != 200:
        raise BenchError(f"{page.name}: HTTP {response.status_code} for {response.request['PATH_INFO']}")


def time_export(client: Client, events: int) -> tuple[float, int, int, float]:
    """The whole trail as CSV: seconds, rows, bytes, and how much the process's peak memory grew (MB)."""
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    response = client.get("/admin/audit/auditevent/export/?format=csv")
    size, lines = 0, 0
    assert isinstance(response, StreamingHttpResponse)
    for chunk in response:
        size += len(chunk)
        lines += chunk.count(b"\r\n")
    seconds = time.perf_counter() - started
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    rows = lines - 1  # the header
    if rows < events:
        raise BenchError(f"the export holds {rows} rows, the trail at least {events}")
    return seconds, rows, size, grown


# --- the report ---------------------------------------------------------------------------------------------------


def report(
    database: str,
    bench_name: str,
    plan: "Plan",
    loaded: Loaded,
    timings: list[Timing],
    export: tuple[float, int, int, float] | None,
    load: tuple[float, float],
    total: float,
) -> bool:
    """Print the figures; whether every list and detail page met the target."""
    print_heading("Console benchmark", database, bench_name)
    print(
        f"Loaded in {loaded.seconds:.1f} s: {loaded.events:,} audit events (valid rows, not a valid hash chain: "
        f"the pages never verify it), {loaded.runs:,} runs with {loaded.steps:,} steps, {loaded.conversations:,} "
        f"conversations with {loaded.messages:,} messages; then ANALYZE"
    )
    print_load(load)
    print(
        f"Each page: {WARMUP_REQUESTS} warm-up requests, then {plan.requests} timed, as a logged-in superuser "
        "(django.test.Client: the whole Django stack, no network); detail pages pick a random row each time"
    )
    print()
    header = f"{'page':<25}{'queries':>8}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}  {'count shown':<18}{'target':<8}"
    print(header)
    print("-" * len(header))
    met = True
    for timing in timings:
        p95 = timing.percentile(95)
        if timing.page.role == "baseline":
            shown = "baseline"
        elif timing.page.role == "info":
            shown = "(info)"
        else:
            shown = verdict(p95 < TARGET_P95_MS)
            met = met and p95 < TARGET_P95_MS
        print(
            f"{timing.page.name:<25}{timing.queries:>8}{timing.percentile(50):>9.1f}{p95:>9.1f}{timing.ms[-1]:>9.1f}"
            f"  {timing.count_label:<18}{shown:<8}"
        )
    print()
    chrome = next(t for t in timings if t.page.name == "console chrome")
    print(
        f"Baselines: /healthz is Django's stack alone; the console chrome (the password change form: session, user, "
        f"the menu, the base template) at p50 {chrome.percentile(50):.1f} ms is what every console page pays "
        "before its own queries."
    )
    print(
        f"The last page is the deepest a list links ({BoundedCountPaginator.count_limit:,} rows in); past it, filter. "
        "For information, outside the target: the text search (icontains over actions and labels reads every "
        "event it cannot rule out: search by sequence, target id or correlation id, or filter, instead) and the "
        "admin index (the dashboard)."
    )
    if export is not None:
        seconds, rows, size, grown = export
        print(
            f"Export of the whole trail as CSV: {rows:,} rows, {size / 1e6:.0f} MB in {seconds:.1f} s "
            f"({rows / seconds:,.0f} rows/s); the process's peak memory grew {grown:.0f} MB (streamed in chunks)"
        )
    print()
    scope = target_scope("the target is for PostgreSQL")
    print(f"Target (issue): p95 below {TARGET_P95_MS:.0f} ms on every list and detail page{scope}: {verdict(met)}")
    print_total(total)
    return met


# --- the run ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    events: int
    runs: int
    conversations: int
    messages: int
    requests: int
    export: bool


def parse_args(argv: Sequence[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        prog="python -m bench.admin",
        description="Time the console's lists and detail pages over large tables, on a throw-away database.",
    )
    parser.add_argument("--events", type=int, help="audit events to load (default 1,000,000; --quick 20,000)")
    parser.add_argument("--runs", type=int, help="runs to load, 1-5 steps each (default 100,000; --quick 2,000)")
    parser.add_argument("--conversations", type=int, help="conversations (default 100,000; --quick 2,000)")
    parser.add_argument("--messages", type=int, default=3, help="messages per conversation (default 3)")
    parser.add_argument("--requests", type=int, help="timed requests per page (default 30; --quick 10)")
    parser.add_argument("--export", action="store_true", help="also time a CSV export of the whole trail")
    parser.add_argument("--quick", action="store_true", help="a small run, to check that the benchmark works")
    args = parser.parse_args(argv)
    quick = bool(args.quick)

    def pick(value: int | None, full: int, small: int) -> int:
        return value if value is not None else (small if quick else full)

    plan = Plan(
        events=pick(args.events, 1_000_000, 20_000),
        runs=pick(args.runs, 100_000, 2_000),
        conversations=pick(args.conversations, 100_000, 2_000),
        messages=args.messages,
        requests=pick(args.requests, 30, 10),
        export=bool(args.export),
    )
    for name, value in (
        ("--events", plan.events),
        ("--runs", plan.runs),
        ("--conversations", plan.conversations),
        ("--messages", plan.messages),
        ("--requests", plan.requests),
    ):
        if value < 1:
            parser.error(f"{name} must be at least 1")
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse_args(argv)
    run_started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    # Pages render without a collectstatic manifest, as in the tests.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with throwaway_database(POSTGRES_BENCH_DATABASE, SQLITE_BENCH_FILE) as bench_name:
        database = database_description()
        cast = prepare_cast()
        print(
            f"Loading {plan.events:,} audit events, {plan.runs:,} runs, {plan.conversations:,} conversations ...",
            flush=True,
        )
        loaded = load(plan, cast)
        client = Client(HTTP_HOST=HOST)
        client.force_login(cast.superuser)
        timings = []
        for page in pages(loaded):
            print(f"  {page.name} ...", flush=True)
            timings.append(measure(client, page, plan.requests))
        export = time_export(client, loaded.events) if plan.export else None
        load_average = (load_at_start, os.getloadavg()[0])
        report(database, bench_name, plan, loaded, timings, export, load_average, time.perf_counter() - run_started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
