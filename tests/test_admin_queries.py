"""The console's pages over large tables: a fixed number of queries whatever the rows, and no unbounded count.

Each changelist and detail page is opened with 1 row (or step, message) and with 30: the query count is the
same, and pinned. The lists of audit events, runs and conversations count at most ``count_limit + 1`` rows
(``config.changelists.BoundedCountPaginator``), or take PostgreSQL's estimate for a whole table.
"""

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from agents.models import Run, RunStatus, Step, StepKind
from audit.context import Actor
from audit.models import AuditEvent
from audit.services import Target, audit_record
from config.changelists import BoundedCountPaginator, CountKind, distinct_values
from governance.models import GovernedObject, Label, ReviewDecision, ReviewItem, ReviewKind, Version
from personas.models import Conversation, Message

pytestmark = pytest.mark.django_db

POSTGRESQL = connection.vendor == "postgresql"
WEEK_AGO = str(timezone.now() - dt.timedelta(days=7))


# --- rows ------------------------------------------------------------------------------------------------------


class Cast:
    """Rows written straight through the ORM: the pages only read them."""

    def __init__(self, user: User) -> None:
        self.user = user
        Label.objects.get_or_create(name="production")
        self.agent = GovernedObject.objects.create(kind="agent", slug="bench-agent", name="Bench agent")
        self.persona = GovernedObject.objects.create(kind="persona", slug="bench-persona", name="Bench persona")
        self.agent_version = self.version(self.agent, 1)
        self.persona_version = self.version(self.persona, 1)

    def version(self, obj: GovernedObject, number: int) -> Version:
        return Version.objects.create(
            object=obj,
            number=number,
            name=obj.name,
            spec={"n": number},
            checksum="0" * 64,
            author=self.user,
            note=f"version {number}",
            checks=[{"name": "schema", "passed": True, "findings": []}],
        )

    def review(self, index: int, version: Version | None = None, step: Step | None = None) -> ReviewItem:
        """A configuration review of ``version``, or a tool approval of ``step`` (else of nothing in particular)."""
        return ReviewItem.objects.create(
            kind=ReviewKind.CONFIGURATION if version else ReviewKind.TOOL_APPROVAL,
            subject_type="agents.step",
            subject_id=str(step.pk if step else index),
            subject_label=f"call {index}",
            version=version,
            reason="risky",
            raised_by="policy",
            requested_by=self.user,
            requested_by_label=self.user.username,
            payload={"tool": "lookup", "arguments": {"order": index}},
            digest="0" * 64,
            due_at=timezone.now() + dt.timedelta(hours=1),
        )

    def run(self, steps: int = 3) -> Run:
        """A finished run with ``steps`` tool calls; every tenth, from the first, was approved by a person."""
        run = Run.objects.create(
            agent=self.agent,
            version=self.agent_version,
            label="production",
            requested_by=self.user,
            status=RunStatus.SUCCEEDED,
            input={"question": "where is my order"},
            result={"answer": "shipped"},
        )
        now = timezone.now()
        created = Step.objects.bulk_create(
            Step(
                run=run,
                seq=seq,
                kind=StepKind.TOOL_CALL,
                arguments={"order": seq},
                result={"ok": True},
                detail={"tool_name": "lookup"},
                tokens=10,
                started_at=now,
                finished_at=now,
            )
            for seq in range(1, steps + 1)
        )
        for step in Step.objects.filter(run=run, seq__in=[s.seq for s in created if s.seq % 10 == 1]):
            step.review = self.review(step.seq, step=step)
            step.save(update_fields=["review"])
        return run

    def conversation(self, messages: int = 3) -> Conversation:
        conversation = Conversation.objects.create(
            persona=self.persona, version=self.persona_version, label="production", client=self.user
        )
        Message.objects.bulk_create(
            Message(
                conversation=conversation,
                seq=seq,
                role="operator" if seq % 2 else "user",
                text=f"message {seq}",
                flags=[{"kind": "pii", "violations": ["email"]}] if seq % 5 == 0 else [],
                author=self.user if seq % 2 else None,
            )
            for seq in range(1, messages + 1)
        )
        return conversation


@pytest.fixture
def cast(admin: User) -> Cast:
    return Cast(admin)


@pytest.fixture
def console(client: Client, admin: User) -> Client:
    client.force_login(admin)
    return client


def page_queries(client: Client, url: str, params: dict[str, str] | None = None) -> list[str]:
    """The SQL a page load sends, after a first load has warmed what is cached per process."""
    client.get(url, params)
    with CaptureQueriesContext(connection) as context:
        response = client.get(url, params)
    assert response.status_code == 200, response
    return [query["sql"] for query in context.captured_queries]


def assert_no_unbounded_count(queries: list[str]) -> None:
    for sql in queries:
        if re.search(r"\bCOUNT\(", sql, re.IGNORECASE):
            assert re.search(r"\bLIMIT\b", sql, re.IGNORECASE), f"an unbounded count: {sql}"


def same_for_1_and_30(
    client: Client, url: str, add: Callable[[int], Any], params: dict[str, str] | None = None, *, large: bool = True
) -> int:
    """Add 1 row, count the page's queries; add 29 more, count again; they must be equal. Returns the count.

    ``large``: a large table's list, which must not count its rows without a limit.
    """
    add(1)
    one = page_queries(client, url, params)
    add(29)
    thirty = page_queries(client, url, params)
    assert len(one) == len(thirty), "\n".join(thirty)
    if large:
        assert_no_unbounded_count(thirty)
    return len(thirty)


# The pinned counts. Every page: the session and its user (2), the user's permissions and its groups' (2); a
# detail page reads its object twice (the view's own checks, then Django's form). A list of a whole table on
# PostgreSQL asks the planner's estimate of its rows (1 more: no count query at all when the table is large).
ESTIMATE = 1 if POSTGRESQL else 0


# --- changelists -----------------------------------------------------------------------------------------------


def test_audit_event_list(console: Client) -> None:
    def add(n: int) -> None:
        for i in range(n):
            audit_record(actor=Actor.system("tests"), action="agent.run.started", target=Target("agents.run", str(i)))

    url = reverse("admin:audit_auditevent_changelist")
    # 4 + the actor types and the actions in use (an index scan each), the bounded count, the page.
    assert same_for_1_and_30(console, url, add) == 8 + ESTIMATE
    filtered = {"actor_type__exact": "system", "namespace": "agent", "q": "agents.run", "created_at__gte": WEEK_AGO}
    assert same_for_1_and_30(console, url, add, filtered) == 8


def test_run_list(console: Client, cast: Cast) -> None:
    url = reverse("admin:agents_run_changelist")
    add = lambda n: [cast.run() for _ in range(n)]  # noqa: E731
    # 4 + the labels and the agents (the filters' choices), the bounded count, the page (agent, version, user joined).
    assert same_for_1_and_30(console, url, add) == 8 + ESTIMATE
    filtered = {"status__exact": "succeeded", "label__exact": "production", "created_at__gte": WEEK_AGO, "q": "bench"}
    assert same_for_1_and_30(console, url, add, filtered) == 8


def test_conversation_list(console: Client, cast: Cast) -> None:
    url = reverse("admin:personas_conversation_changelist")
    add = lambda n: [cast.conversation() for _ in range(n)]  # noqa: E731
    # 4 + the labels and the personas, the bounded count, the page (persona, version, client joined).
    assert same_for_1_and_30(console, url, add) == 8 + ESTIMATE
    filtered = {"status__exact": "active", "label__exact": "production", "created_at__gte": WEEK_AGO, "q": "bench"}
    assert same_for_1_and_30(console, url, add, filtered) == 8


def test_review_item_list(console: Client, cast: Cast) -> None:
    url = reverse("admin:governance_reviewitem_changelist")
    add = lambda n: [cast.review(i) for i in range(n)]  # noqa: E731
    # 4 + the count, the full count, the page.
    assert same_for_1_and_30(console, url, add, {"status__exact": "pending"}, large=False) <= 7


def test_version_list(console: Client, cast: Cast) -> None:
    url = reverse("admin:governance_version_changelist")
    numbers = iter(range(2, 100))
    add = lambda n: [cast.version(cast.agent, next(numbers)) for _ in range(n)]  # noqa: E731
    # 4 + the count, the full count, the page (object and author joined), the kinds (a small table's DISTINCT).
    assert same_for_1_and_30(console, url, add, large=False) <= 8


# --- detail pages ----------------------------------------------------------------------------------------------


def test_audit_event_detail(console: Client) -> None:
    event = audit_record(actor=Actor.system("tests"), action="agent.run.started", details={"big": list(range(50))})
    queries = page_queries(console, reverse("admin:audit_auditevent_change", args=[event.sequence]))
    assert len(queries) == 5, "\n".join(queries)  # 4 + the event


def test_run_detail(console: Client, cast: Cast) -> None:
    counts = [
        len(page_queries(console, reverse("admin:agents_run_change", args=[run.pk])))
        for run in (cast.run(steps=1), cast.run(steps=30))
    ]
    # 4 + the run (twice), its steps (reviews joined), the reviews' decisions.
    assert counts == [8, 8]


def test_conversation_detail(console: Client, cast: Cast) -> None:
    counts = [
        len(page_queries(console, reverse("admin:personas_conversation_change", args=[conversation.pk])))
        for conversation in (cast.conversation(messages=1), cast.conversation(messages=30))
    ]
    # 4 + the conversation (twice), its messages (authors joined).
    assert counts == [7, 7]


def test_review_item_detail(console: Client, cast: Cast, make_user: Callable[..., User]) -> None:
    tool_call = cast.run(steps=5).steps.get(seq=1).review
    assert tool_call is not None
    queries = page_queries(console, reverse("admin:governance_reviewitem_change", args=[tool_call.pk]))
    assert len(queries) <= 12, "\n".join(queries)  # 11 + the approvals in, for the summary of what is asked

    configuration = cast.review(2, version=cast.version(cast.agent, 2))
    url = reverse("admin:governance_reviewitem_change", args=[configuration.pk])

    def decide(n: int) -> None:
        for _ in range(n):
            decider = make_user(f"decider-{ReviewDecision.objects.count()}")
            ReviewDecision.objects.create(
                item=configuration,
                decider=decider,
                decider_label=decider.username,
                decider_roles="Approver",
                decision="approve",
                digest="0" * 64,
            )

    decide(1)
    one = page_queries(console, url)
    decide(29)
    thirty = page_queries(console, url)
    assert len(one) == len(thirty) <= 12, "\n".join(thirty)


def test_version_detail(console: Client, cast: Cast) -> None:
    version = cast.version(cast.agent, 2)
    cast.review(3, version=version)
    queries = page_queries(console, reverse("admin:governance_version_change", args=[version.pk]))
    assert len(queries) <= 9, "\n".join(queries)


# --- the bounded count -----------------------------------------------------------------------------------------


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(BoundedCountPaginator, "count_limit", 5)
    monkeypatch.setattr("config.changelists.planner_estimate", lambda queryset: None)  # as on SQLite
    return 5


def test_a_list_longer_than_the_limit_says_so(console: Client, cast: Cast, small_limit: int) -> None:
    for _ in range(8):
        cast.run(steps=1)
    url = reverse("admin:agents_run_changelist")
    with CaptureQueriesContext(connection) as context:
        response = console.get(url)
    assert response.status_code == 200
    assert response.context["cl"].result_count == 5
    assert response.context["cl"].paginator.count_kind == CountKind.AT_LEAST
    assert b'<span class="result-count">5+</span> runs' in response.content
    counts = [query["sql"] for query in context.captured_queries if "COUNT(" in query["sql"].upper()]
    assert len(counts) == 1
    assert re.search(r"LIMIT 6\b", counts[0]), counts[0]
    # All 8 rows fit in one page: the bounded count does not hide any of them.
    assert len(response.context["cl"].result_list) == 8

    # Under the limit, exact.
    response = console.get(url, {"status__exact": "failed"})
    assert b'<span class="result-count">0</span> runs' in response.content
    Run.objects.filter(pk__in=Run.objects.values("pk")[:3]).update(status=RunStatus.FAILED)
    response = console.get(url, {"status__exact": "failed"})
    assert response.context["cl"].paginator.count_kind == CountKind.EXACT
    assert b'<span class="result-count">3</span> runs' in response.content


def test_pages_up_to_the_limit_are_linked(console: Client, small_limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("audit.admin.AuditEventAdmin.list_per_page", 2)
    for i in range(10):
        audit_record(actor=Actor.system("tests"), action="agent.run.started", target=Target("agents.run", str(i)))
    url = reverse("admin:audit_auditevent_changelist")
    response = console.get(url, {"p": "3"})
    assert response.status_code == 200
    assert b"5+ results" in console.get(url, {"q": "agent"}).content
    assert len(response.context["cl"].result_list) == 1  # the limit's last page: row 5
    assert console.get(url, {"p": "4"}).status_code == 302  # past the limit: narrow the list instead


def test_an_estimate_is_shown_as_one_and_bounds_the_pages(
    console: Client, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(BoundedCountPaginator, "count_limit", 100)
    monkeypatch.setattr("config.changelists.planner_estimate", lambda queryset: 1_234_567)
    cast.run(steps=1)
    url = reverse("admin:agents_run_changelist")
    with CaptureQueriesContext(connection) as context:
        response = console.get(url)
    cl = response.context["cl"]
    assert (cl.result_count, cl.paginator.count_kind) == (1_234_567, CountKind.ESTIMATED)
    assert b'<span class="result-count">about 1,234,567</span> runs' in response.content
    assert not [query for query in context.captured_queries if "COUNT(" in query["sql"].upper()]
    assert cl.paginator.num_pages == 2  # 100 rows, 50 a page: no page past the limit
    assert console.get(url, {"p": "3"}).status_code == 302
    # A filtered list is counted, never estimated.
    response = console.get(url, {"status__exact": "succeeded"})
    assert response.context["cl"].paginator.count_kind == CountKind.EXACT
    assert b'<span class="result-count">1</span> run' in response.content


@pytest.mark.skipif(not POSTGRESQL, reason="the planner's estimate is PostgreSQL's")
def test_a_whole_table_shows_the_planners_estimate(console: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(BoundedCountPaginator, "count_limit", 5)
    for i in range(20):
        audit_record(actor=Actor.system("tests"), action="agent.run.started", target=Target("agents.run", str(i)))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_auditevent")
    total = AuditEvent.objects.count()
    url = reverse("admin:audit_auditevent_changelist")
    with CaptureQueriesContext(connection) as context:
        response = console.get(url)
    cl = response.context["cl"]
    assert cl.paginator.count_kind == CountKind.ESTIMATED
    assert cl.result_count == pytest.approx(total, rel=0.2)
    assert f'<span class="result-count">about {cl.result_count:,}</span> audit events'.encode() in response.content
    assert not [q for q in context.captured_queries if "COUNT(" in q["sql"].upper()]
    # No page past the limit, however many rows the estimate says: OFFSET would read them all.
    monkeypatch.setattr("audit.admin.AuditEventAdmin.list_per_page", 2)
    assert console.get(url, {"p": "3"}).context["cl"].paginator.num_pages == 3
    assert console.get(url, {"p": "4"}).status_code == 302
    # Filtered, it counts (boundedly).
    response = console.get(url, {"namespace": "agent"})
    assert response.context["cl"].paginator.count_kind == CountKind.AT_LEAST


def test_distinct_values_by_index_skipping() -> None:
    for actor_type in ("user", "system", "agent_run", "user", "system"):
        audit_record(actor=Actor(type=actor_type, id="1", label="x"), action=f"{actor_type}.did.something")
    expected = sorted(set(AuditEvent.objects.values_list("actor_type", flat=True)))
    assert distinct_values(AuditEvent, "actor_type") == expected
    assert distinct_values(AuditEvent, "action") == sorted(set(AuditEvent.objects.values_list("action", flat=True)))
