"""The console's reads: the article's metrics (``metrics``) and the dashboard's panels.

Every function here issues a fixed number of queries, whatever the amount of data: figures are aggregated by
the database (grouped counts and sums, and medians by window functions), never by loading rows. No query counts
a whole table: the metrics read one period (at most 90 days), the dashboard's run counts stop at
``RUN_COUNT_CAP``, and the audit trail is only read at its head.

**Cohorts.** A run counts on the day it was created, with everything that happened in it (its status, cost and
steps as they are now); a conversation counts on the day it started, with its messages, rating and escalation.
Days are calendar days in ``TIME_ZONE``. The metrics of a day may therefore still change while its runs and
conversations go on.

**The figures** (``Figures``; ``docs/console.md`` has the same list):

- task completion rate = runs whose outcome is ``completed`` / finished runs (finished: succeeded, failed,
  cancelled, timed out or rolled back; each has an outcome, ``agents.outcomes``). ``None`` when no run finished.
  With the finished runs that were not completed and those that escalated (their rate: ``run_escalation_rate``).
  A succeeded run is not a completed one: ``runs_succeeded`` counts statuses, for comparison only.
- median time to resolution, two figures: of runs, the median of ``finished_at - created_at`` over finished
  runs; of conversations, the median of ``closed_at - created_at`` over closed conversations. Seconds.
- user satisfaction = the average of the ratings (1 to 5) clients gave, with the number of ratings.
- policy violations per 100 interactions = 100 * violations / interactions, where a violation is a guardrail
  policy deciding anything but ``allow``, as recorded: a message carrying a ``guardrail.*`` flag (a user's
  message or a persona's answer that a policy denied, redacted, escalated or sent for approval), a run's
  ``guardrail`` step (written only when an input or output policy did not allow), and a run's tool call that an
  action policy denied or sent for approval; and an interaction is a user's message or a run.
- escalation rate = conversations handed to a person (those with a hand-over review item, whatever became of
  it) / conversations; the runs' is ``run_escalation_rate`` above.
- cost = the sum of the runs' ``cost_used``.
"""

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    BooleanField,
    CharField,
    Count,
    Expression,
    F,
    FloatField,
    Func,
    Q,
    QuerySet,
    Sum,
    Window,
)
from django.db.models.functions import RowNumber, TruncDate
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

from agents.models import FINISHED_RUN_STATUSES, Run, RunOutcome, RunStatus, Step, StepKind, StepStatus
from agents.services import AGENT_KIND
from audit.models import AuditCheckpoint, AuditEvent
from governance.models import GovernedObject, ReviewItem, ReviewKind, ReviewStatus
from personas.models import Conversation, Message, Role
from personas.services import PERSONA_KIND

DEFAULT_DAYS = 30
MAX_DAYS = 90
RUN_COUNT_CAP = 10_000
VERIFICATION_ACTIONS = ("audit.chain.verified", "audit.chain.broken")

# --- database expressions that differ between PostgreSQL and SQLite ----------------------------------------------


class SecondsBetween(Func):
    """``end - start`` in seconds, as a float."""

    output_field = FloatField()
    arity = 2

    def _operands(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, str, list[Any]]:
        end_sql, end_params = compiler.compile(self.source_expressions[0])
        start_sql, start_params = compiler.compile(self.source_expressions[1])
        return end_sql, start_sql, [*end_params, *start_params]

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> tuple[str, Any]:
        end, start, params = self._operands(compiler, connection)
        return f"((julianday({end}) - julianday({start})) * 86400.0)", params

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> tuple[str, Any]:
        end, start, params = self._operands(compiler, connection)
        return f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS double precision)", params


class HasGuardrailFlag(Func):
    """True when a message's ``flags`` (a JSON list of objects) hold one whose ``kind`` starts with ``guardrail.``."""

    output_field = BooleanField()
    arity = 1

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> tuple[str, Any]:
        flags, params = compiler.compile(self.source_expressions[0])
        # ``flags`` is the column's compiled SQL, not a value: values are parameters.
        sql = f"EXISTS (SELECT 1 FROM json_each({flags}) WHERE json_extract(json_each.value, '$.kind') LIKE %s)"  # noqa: S608
        return sql, [*params, "guardrail.%"]

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> tuple[str, Any]:
        flags, params = compiler.compile(self.source_expressions[0])
        return f"""jsonb_path_exists({flags}, '$[*] ? (@.kind starts with "guardrail.")')""", params


class UuidText(Func):
    """A UUID column as its hyphenated text, which is how ``ReviewItem.subject_id`` names a conversation.

    SQLite stores a UUID as 32 hex digits; PostgreSQL as a ``uuid``.
    """

    output_field = CharField()
    arity = 1

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> tuple[str, Any]:
        value, params = compiler.compile(self.source_expressions[0])
        parts = " || '-' || ".join(
            f"substr({value}, {start}, {length})" for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
        )
        return f"({parts})", list(params) * 5

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> tuple[str, Any]:
        value, params = compiler.compile(self.source_expressions[0])
        return f"CAST({value} AS text)", params


# --- the metrics ---------------------------------------------------------------------------------------------------


@dataclass
class Figures:
    """The raw tallies of one scope (everything, a day, an agent or a persona); ``as_dict`` derives the metrics."""

    runs_started: int = 0
    runs_finished: int = 0
    runs_succeeded: int = 0
    runs_completed: int = 0
    runs_not_completed: int = 0
    runs_escalated: int = 0
    run_violations: int = 0
    cost: Decimal = field(default_factory=Decimal)
    median_run_resolution_seconds: float | None = None
    conversations_started: int = 0
    conversations_closed: int = 0
    escalated_conversations: int = 0
    ratings: int = 0
    rating_sum: int = 0
    user_messages: int = 0
    message_violations: int = 0
    median_conversation_resolution_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        violations = self.run_violations + self.message_violations
        interactions = self.user_messages + self.runs_started
        return {
            "runs_started": self.runs_started,
            "runs_finished": self.runs_finished,
            "runs_succeeded": self.runs_succeeded,
            "runs_completed": self.runs_completed,
            "runs_not_completed": self.runs_not_completed,
            "runs_escalated": self.runs_escalated,
            "task_completion_rate": _ratio(self.runs_completed, self.runs_finished),
            "run_escalation_rate": _ratio(self.runs_escalated, self.runs_finished),
            "median_run_resolution_seconds": _rounded(self.median_run_resolution_seconds, 3),
            "conversations_started": self.conversations_started,
            "conversations_closed": self.conversations_closed,
            "median_conversation_resolution_seconds": _rounded(self.median_conversation_resolution_seconds, 3),
            "user_satisfaction": _rounded(self.rating_sum / self.ratings if self.ratings else None, 2),
            "ratings": self.ratings,
            "policy_violations": violations,
            "policy_violations_in_conversations": self.message_violations,
            "policy_violations_in_runs": self.run_violations,
            "user_messages": self.user_messages,
            "interactions": interactions,
            "policy_violations_per_100_interactions": _rounded(
                100 * violations / interactions if interactions else None, 2
            ),
            "escalated_conversations": self.escalated_conversations,
            "escalation_rate": _ratio(self.escalated_conversations, self.conversations_started),
            "cost": self.cost,
        }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _rounded(value: float | None, places: int) -> float | None:
    return None if value is None else round(float(value), places)


@dataclass
class _Tally:
    """Figures for everything, per day, per agent and per persona, filled from grouped rows."""

    days: list[dt.date]
    total: Figures = field(default_factory=Figures)
    by_day: dict[dt.date, Figures] = field(default_factory=dict)
    by_agent: dict[int, Figures] = field(default_factory=dict)
    by_persona: dict[int, Figures] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_day = {day: Figures() for day in self.days}

    def scopes(self, day: Any, *, agent: int | None = None, persona: int | None = None) -> list[Figures]:
        scopes = [self.total, self.by_day[_as_date(day)]]
        if agent is not None:
            scopes.append(self.by_agent.setdefault(agent, Figures()))
        if persona is not None:
            scopes.append(self.by_persona.setdefault(persona, Figures()))
        return scopes


def _as_date(value: Any) -> dt.date:
    """A day as the database gave it: a ``date`` (PostgreSQL, or the ORM), or ISO text (SQLite, raw SQL)."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def period_days(days: int, *, now: dt.datetime | None = None) -> tuple[list[dt.date], dt.datetime, dt.datetime]:
    """The last ``days`` calendar days up to today (``TIME_ZONE``), and the start and end of that span."""
    today = timezone.localdate(now or timezone.now())
    first = today - dt.timedelta(days=days - 1)
    start = timezone.make_aware(dt.datetime.combine(first, dt.time.min))
    end = timezone.make_aware(dt.datetime.combine(today + dt.timedelta(days=1), dt.time.min))
    return [first + dt.timedelta(days=offset) for offset in range(days)], start, end


def metrics(
    *,
    days: int = DEFAULT_DAYS,
    agent: GovernedObject | None = None,
    persona: GovernedObject | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The metrics of the last ``days`` days: in total, per day, per agent and per persona.

    ``agent`` and ``persona`` choose the subjects: with neither, every agent's runs and every persona's
    conversations; with ``agent`` alone, that agent's runs only (no conversations: conversation figures are zero
    and their rates ``None``); with ``persona`` alone, that persona's conversations only; with both, the agent's
    runs and the persona's conversations. Seven queries at most, whatever the amount of data.
    """
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be from 1 to {MAX_DAYS}, not {days}")
    dates, start, end = period_days(days, now=now)
    tally = _Tally(dates)
    with_runs = agent is not None or persona is None
    with_conversations = persona is not None or agent is None
    if with_runs:
        runs = Run.objects.filter(created_at__gte=start, created_at__lt=end)
        if agent is not None:
            runs = runs.filter(agent=agent)
        _tally_runs(tally, runs)
    if with_conversations:
        conversations = Conversation.objects.filter(created_at__gte=start, created_at__lt=end)
        if persona is not None:
            conversations = conversations.filter(persona=persona)
        _tally_conversations(tally, conversations, since=start)
    in_scope = Q()
    if with_runs:
        in_scope |= Q(pk=agent.pk) if agent else Q(kind=AGENT_KIND)
    if with_conversations:
        in_scope |= Q(pk=persona.pk) if persona else Q(kind=PERSONA_KIND)
    subjects = GovernedObject.objects.filter(in_scope)
    agents: list[dict[str, Any]] = []
    personas: list[dict[str, Any]] = []
    for subject in subjects.order_by("slug").values("pk", "kind", "slug", "name"):
        by_kind, rows = (tally.by_agent, agents) if subject["kind"] == AGENT_KIND else (tally.by_persona, personas)
        figures = by_kind.get(subject["pk"], Figures())
        rows.append({"slug": subject["slug"], "name": subject["name"], **figures.as_dict()})
    return {
        "days": days,
        "start": start,
        "end": end,
        "agent": agent.slug if agent else None,
        "persona": persona.slug if persona else None,
        "totals": tally.total.as_dict(),
        "daily": [{"date": day, **tally.by_day[day].as_dict()} for day in dates],
        "agents": agents,
        "personas": personas,
    }


def _tally_runs(tally: _Tally, runs: QuerySet[Run]) -> None:
    """Three queries: runs grouped by agent and day, their policy interventions, and the median durations."""
    grouped = (
        runs.order_by()
        .values("agent_id", day=TruncDate("created_at"))
        .annotate(
            started=Count("pk"),
            finished=Count("pk", filter=Q(status__in=FINISHED_RUN_STATUSES)),
            succeeded=Count("pk", filter=Q(status=RunStatus.SUCCEEDED)),
            completed=Count("pk", filter=Q(status__in=FINISHED_RUN_STATUSES, outcome=RunOutcome.COMPLETED)),
            not_completed=Count("pk", filter=Q(status__in=FINISHED_RUN_STATUSES, outcome=RunOutcome.NOT_COMPLETED)),
            escalated=Count("pk", filter=Q(status__in=FINISHED_RUN_STATUSES, outcome=RunOutcome.ESCALATED)),
            cost=Sum("cost_used"),
        )
    )
    for row in grouped:
        for figures in tally.scopes(row["day"], agent=row["agent_id"]):
            figures.runs_started += row["started"]
            figures.runs_finished += row["finished"]
            figures.runs_succeeded += row["succeeded"]
            figures.runs_completed += row["completed"]
            figures.runs_not_completed += row["not_completed"]
            figures.runs_escalated += row["escalated"]
            figures.cost += row["cost"] or Decimal(0)
    interventions = (
        Step.objects.filter(run__in=runs.order_by().values("pk"))
        .filter(
            Q(kind=StepKind.GUARDRAIL)
            | Q(kind=StepKind.TOOL_CALL, status=StepStatus.DENIED, detail__has_key="guardrail")
            | Q(kind=StepKind.TOOL_CALL, review__reason__startswith="policy: ")
        )
        .order_by()
        .values(agent_id=F("run__agent_id"), day=TruncDate("run__created_at"))
        .annotate(violations=Count("pk"))
    )
    for intervention in interventions:
        for figures in tally.scopes(intervention["day"], agent=intervention["agent_id"]):
            figures.run_violations += intervention["violations"]
    finished = runs.filter(status__in=FINISHED_RUN_STATUSES, finished_at__isnull=False)
    medians = _medians(finished, value=SecondsBetween("finished_at", "created_at"), group="agent_id")
    tally.total.median_run_resolution_seconds = medians.get(("all", None))
    for key, median in medians.items():
        if key[0] == "day":
            tally.by_day[_as_date(key[1])].median_run_resolution_seconds = median
        elif key[0] == "group":
            tally.by_agent.setdefault(key[1], Figures()).median_run_resolution_seconds = median


def _tally_conversations(tally: _Tally, conversations: QuerySet[Conversation], *, since: dt.datetime) -> None:
    """Three queries: conversations grouped by persona and day (with escalations), their messages, and the median
    durations."""
    # A hand-over item is opened after its conversation started, so only items since the period's start matter.
    handed_over = ReviewItem.objects.filter(
        kind=ReviewKind.HANDOVER, subject_type=Conversation._meta.label_lower, created_at__gte=since
    ).values("subject_id")
    grouped = (
        conversations.order_by()
        .alias(id_text=UuidText("id"))
        .values("persona_id", day=TruncDate("created_at"))
        .annotate(
            started=Count("pk"),
            closed=Count("pk", filter=Q(closed_at__isnull=False)),
            escalated=Count("pk", filter=Q(id_text__in=handed_over)),
            ratings=Count("rating"),
            rating_sum=Sum("rating"),
        )
    )
    for row in grouped:
        for figures in tally.scopes(row["day"], persona=row["persona_id"]):
            figures.conversations_started += row["started"]
            figures.conversations_closed += row["closed"]
            figures.escalated_conversations += row["escalated"]
            figures.ratings += row["ratings"]
            figures.rating_sum += row["rating_sum"] or 0
    messages = (
        Message.objects.filter(conversation__in=conversations.order_by().values("pk"))
        .order_by()
        .values(persona_id=F("conversation__persona_id"), day=TruncDate("conversation__created_at"))
        .annotate(
            user_messages=Count("pk", filter=Q(role=Role.USER)),
            violations=Count("pk", filter=Q(HasGuardrailFlag("flags"))),
        )
    )
    for message in messages:
        for figures in tally.scopes(message["day"], persona=message["persona_id"]):
            figures.user_messages += message["user_messages"]
            figures.message_violations += message["violations"]
    closed = conversations.filter(closed_at__isnull=False)
    medians = _medians(closed, value=SecondsBetween("closed_at", "created_at"), group="persona_id")
    tally.total.median_conversation_resolution_seconds = medians.get(("all", None))
    for key, median in medians.items():
        if key[0] == "day":
            tally.by_day[_as_date(key[1])].median_conversation_resolution_seconds = median
        elif key[0] == "group":
            tally.by_persona.setdefault(key[1], Figures()).median_conversation_resolution_seconds = median


def _medians(rows: QuerySet[Any], *, value: Expression, group: str) -> dict[tuple[str, Any], float]:
    """The median of ``value`` over ``rows``, in one query: over all of them (key ``("all", None)``), per day of
    ``created_at`` (``("day", date)``) and per ``group`` column (``("group", id)``).

    Portable SQL (PostgreSQL, SQLite): each row is ranked within each partition by window functions, and the
    median is the average of the middle row, or of the two middle rows when the count is even.
    """
    middle = "{rank} IN (({size} + 1) / 2, ({size} + 2) / 2)"
    ranked = (
        rows.order_by()
        .annotate(m_value=value, m_day=TruncDate("created_at"), m_group=F(group))
        .annotate(
            m_rank_all=Window(RowNumber(), order_by=F("m_value").asc()),
            m_size_all=Window(Count("pk")),
            m_rank_day=Window(RowNumber(), partition_by=[F("m_day")], order_by=F("m_value").asc()),
            m_size_day=Window(Count("pk"), partition_by=[F("m_day")]),
            m_rank_group=Window(RowNumber(), partition_by=[F("m_group")], order_by=F("m_value").asc()),
            m_size_group=Window(Count("pk"), partition_by=[F("m_group")]),
        )
        .values(
            "m_value",
            "m_day",
            "m_group",
            "m_rank_all",
            "m_size_all",
            "m_rank_day",
            "m_size_day",
            "m_rank_group",
            "m_size_group",
        )
    )
    sql, params = ranked.query.sql_with_params()
    # ``sql`` is the ORM's compiled query and the rest is constant: values are parameters. Typed NULLs, and the
    # grouped selects first, so that PostgreSQL can match the columns' types across UNION ALL.
    query = (
        f"WITH ranked AS ({sql}) "  # noqa: S608
        "SELECT 'group', CAST(NULL AS date), m_group, AVG(m_value) FROM ranked "
        f"WHERE {middle.format(rank='m_rank_group', size='m_size_group')} GROUP BY m_group "
        "UNION ALL "
        "SELECT 'day', m_day, CAST(NULL AS bigint), AVG(m_value) FROM ranked "
        f"WHERE {middle.format(rank='m_rank_day', size='m_size_day')} GROUP BY m_day "
        "UNION ALL "
        "SELECT 'all', CAST(NULL AS date), CAST(NULL AS bigint), AVG(m_value) FROM ranked "
        f"WHERE {middle.format(rank='m_rank_all', size='m_size_all')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        found = cursor.fetchall()
    medians: dict[tuple[str, Any], float] = {}
    for scope, day, group_id, median in found:
        if median is None:
            continue
        key = day if scope == "day" else group_id if scope == "group" else None
        medians[(scope, key)] = float(median)
    return medians


# --- the dashboard's panels --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewQueue:
    items: list[ReviewItem]
    pending: int
    overdue: int


def review_queue(*, now: dt.datetime, limit: int = 10) -> ReviewQueue:
    """The oldest pending review items (with their versions' authors, who may not decide them), and how many are
    pending and overdue. Three queries."""
    pending = ReviewItem.objects.filter(status=ReviewStatus.PENDING)
    counts = pending.aggregate(pending=Count("pk"), overdue=Count("pk", filter=Q(due_at__lt=now)))
    items = list(
        pending.select_related("version").prefetch_related("version__authors").order_by("created_at", "pk")[:limit]
    )
    return ReviewQueue(items=items, pending=counts["pending"], overdue=counts["overdue"])


@dataclass(frozen=True)
class RunCounts:
    by_status: list[tuple[str, str, int]]  # (status, label, count), every status, in lifecycle order
    total: int
    capped: bool  # the window held at least ``RUN_COUNT_CAP`` runs: only the latest that many are counted


def runs_by_status(*, since: dt.datetime, cap: int = RUN_COUNT_CAP) -> RunCounts:
    """Runs created since ``since``, by their current status. One query, counting ``cap`` runs at most."""
    latest = Run.objects.filter(created_at__gte=since).order_by("-created_at").values("pk")[:cap]
    rows = Run.objects.filter(pk__in=latest).order_by().values("status").annotate(n=Count("pk"))
    counts = {row["status"]: row["n"] for row in rows}
    by_status = [(status.value, str(status.label), counts.get(status.value, 0)) for status in RunStatus]
    total = sum(counts.values())
    return RunCounts(by_status=by_status, total=total, capped=total >= cap)


@dataclass(frozen=True)
class ChainStatus:
    last_verification: AuditEvent | None
    last_checkpoint: AuditCheckpoint | None

    @property
    def verified_ok(self) -> bool | None:
        if self.last_verification is None:
            return None
        return self.last_verification.action == "audit.chain.verified"


def audit_chain_status() -> ChainStatus:
    """The last verification of the trail (its ``audit.chain.verified``/``broken`` event) and the last signed
    checkpoint. Two queries, each reading one row at the head."""
    verification = AuditEvent.objects.filter(action__in=VERIFICATION_ACTIONS).order_by("-sequence").first()
    checkpoint = AuditCheckpoint.objects.order_by("-pk").first()
    return ChainStatus(last_verification=verification, last_checkpoint=checkpoint)
