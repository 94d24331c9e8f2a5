"""The dashboard on the console's index: each role sees the sections it may read and the links it may follow,
overdue review items stand out, the page loads nothing from elsewhere, and its number of queries is pinned."""

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from agents.models import RunOutcome, RunStatus
from audit.context import Actor
from audit.services import audit_chain_verify, audit_checkpoint_write, audit_record
from console.dashboard import REVIEW_ROWS
from governance.models import ReviewKind
from personas.models import Role
from tests.console.conftest import Cast

INDEX = "/admin/"


def index_page(client: Client, user: User) -> str:
    client.force_login(user)
    response = client.get(INDEX)
    assert response.status_code == 200
    return response.content.decode()


def section(page: str, section_id: str) -> str:
    """The HTML of one dashboard section (``<section id=...>`` up to its end)."""
    found = re.search(rf'<section [^>]*id="{section_id}".*?</section>', page, re.DOTALL)
    assert found, f"no section {section_id!r} on the page"
    return found.group(0)


@pytest.fixture
def activity(cast: Cast, approver: User) -> dict[str, Any]:
    """A little of everything: runs of the last day, a conversation handed to a person, a tool approval asked by
    someone else and an overdue one."""
    agent, persona = cast.subject("agent", "inventory"), cast.subject("persona", "support")
    now = timezone.now()
    cast.run(agent, at=now - dt.timedelta(hours=1), cost="0.30", took=20)
    cast.run(agent, at=now - dt.timedelta(hours=2), status=RunStatus.FAILED, took=5)
    cast.run(agent, at=now - dt.timedelta(hours=30), took=5)  # older than a day: not among the last 24 hours
    conversation = cast.conversation(persona, at=now - dt.timedelta(minutes=30))
    cast.message(conversation, Role.USER)
    handover = cast.handover(conversation)
    tool = cast.review_item(label="hedge in run 1234abcd", created=now - dt.timedelta(minutes=10))
    late = cast.review_item(
        label="replenish in run 5678ef00", created=now - dt.timedelta(hours=3), due=now - dt.timedelta(hours=1)
    )
    return {"handover": handover, "tool": tool, "late": late, "conversation": conversation}


def test_a_viewer_sees_the_queue_the_runs_and_the_metrics_but_no_decide_links_and_no_chain(
    client: Client, viewer: User, activity: dict[str, Any]
) -> None:
    page = index_page(client, viewer)
    queue = section(page, "review-queue")
    for item in ("tool", "late", "handover"):
        assert reverse("admin:governance_reviewitem_change", args=[activity[item].pk]) in queue
    assert "Decide" not in queue
    assert "Answer" not in queue
    runs = section(page, "runs-24h")
    assert re.search(r">succeeded</a></th><td[^>]*>1</td>", runs)
    assert re.search(r">failed</a></th><td[^>]*>1</td>", runs)
    assert re.search(r">all</th><td[^>]*>2</td>", runs)
    metrics = section(page, "metrics")
    assert 'id="metrics-data"' in metrics
    assert 'id="audit-chain"' not in page
    assert "app-governance" in page  # the app list is still there, below
    assert page.index('id="console-dashboard"') < page.index("app-governance")


def test_an_approver_may_decide_what_others_asked_for(
    client: Client, approver: User, cast: Cast, activity: dict[str, Any]
) -> None:
    own = cast.review_item(label="my own request")
    own.requested_by = approver
    own.save(update_fields=["requested_by"])
    queue = section(index_page(client, approver), "review-queue")
    decide = reverse("admin:governance_reviewitem_change", args=[activity["tool"].pk])
    assert f'<a class="console-action" href="{decide}">Decide</a>' in queue
    rows = re.findall(r'<tr class="review-row.*?</tr>', queue, re.DOTALL)
    own_row = next(row for row in rows if "my own request" in row)
    handover_row = next(row for row in rows if str(activity["conversation"]) in row)
    assert "Decide" not in own_row
    assert "Decide" not in handover_row  # a hand-over is answered, not decided
    assert queue.count("Decide") == 2  # the tool approval and the overdue one


def test_an_operator_answers_hand_overs_in_the_conversation(
    client: Client, operator: User, activity: dict[str, Any]
) -> None:
    queue = section(index_page(client, operator), "review-queue")
    conversation = reverse("admin:personas_conversation_change", args=[activity["conversation"].pk])
    assert f'<a class="console-action" href="{conversation}">Answer</a>' in queue
    assert "Decide" not in queue


def test_overdue_items_stand_out(client: Client, viewer: User, activity: dict[str, Any]) -> None:
    queue = section(index_page(client, viewer), "review-queue")
    assert "3 pending" in queue
    assert '<strong class="console-overdue-text">1 overdue</strong>' in queue
    rows = re.findall(r'<tr class="review-row.*?</tr>', queue, re.DOTALL)
    assert len(rows) == 3
    overdue = [row for row in rows if "console-overdue" in row.split(">", 1)[0]]
    assert len(overdue) == 1
    assert "replenish in run 5678ef00" in overdue[0]
    assert "<strong>overdue</strong> by 1" in overdue[0]  # by 1 hour
    assert "oldest first" in queue
    assert rows[0].find("replenish") > 0  # the oldest (three hours) comes first


def test_the_queue_shows_the_oldest_items_only(client: Client, viewer: User, cast: Cast) -> None:
    now = timezone.now()
    for minutes in range(REVIEW_ROWS + 2):
        cast.review_item(label=f"item {minutes} minutes old", created=now - dt.timedelta(minutes=minutes))
    queue = section(index_page(client, viewer), "review-queue")
    assert f"{REVIEW_ROWS + 2} pending" in queue
    assert "item 11 minutes old" in queue
    assert "item 0 minutes old" not in queue


def test_an_auditor_sees_the_last_verification_and_checkpoint_and_may_verify(
    client: Client, auditor: User, activity: dict[str, Any]
) -> None:
    chain = section(index_page(client, auditor), "audit-chain")
    assert "Never verified." in chain
    assert "No signed" in chain
    assert reverse("admin:audit_auditevent_verify") in chain

    checkpoint = audit_checkpoint_write(actor=Actor.system("tests"))
    assert checkpoint is not None
    result = audit_chain_verify(actor=Actor.for_user(auditor))
    chain = section(index_page(client, auditor), "audit-chain")
    assert f"by {auditor.username}" in chain
    assert '<strong class="console-ok">intact</strong>' in chain
    assert f"{result.events_checked} events checked" in chain
    assert f"event {checkpoint.sequence}," in chain


def test_a_broken_chain_says_where(client: Client, auditor: User) -> None:
    audit_record(
        actor=Actor.system("tests"), action="audit.chain.broken", details={"ok": False, "first_broken_sequence": 3}
    )
    chain = section(index_page(client, auditor), "audit-chain")
    assert '<strong class="console-broken">broken</strong> at event 3' in chain


def test_whoever_may_not_verify_gets_no_verify_link(
    client: Client, make_user: Callable[..., User], auditor: User
) -> None:
    reader = make_user("rhea-reader")
    reader.is_staff = True
    reader.save(update_fields=["is_staff"])
    reader.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    page = index_page(client, reader)
    assert 'id="audit-chain"' in page
    assert reverse("admin:audit_auditevent_verify") not in page
    assert 'id="review-queue"' not in page
    assert 'id="metrics"' not in page
    assert 'id="runs-24h"' not in page


def test_the_run_links_open_the_filtered_run_list(client: Client, viewer: User, activity: dict[str, Any]) -> None:
    runs = section(index_page(client, viewer), "runs-24h")
    link = re.search(r'<a href="([^"]+)">succeeded</a>', runs)
    assert link
    response = client.get(link.group(1).replace("&amp;", "&"))
    assert response.status_code == 200  # not the admin's "?e=1" redirect for a lookup it refuses
    assert response.context["cl"].result_count == 1


def test_the_embedded_metrics_are_the_api_figures(client: Client, admin: User, activity: dict[str, Any]) -> None:
    page = index_page(client, admin)
    found = re.search(r'<script id="metrics-data" type="application/json">(.*?)</script>', page, re.DOTALL)
    assert found is not None
    embedded = json.loads(found.group(1))
    api = client.get("/api/metrics/").json()
    assert embedded == api
    assert (embedded["totals"]["runs_started"], embedded["totals"]["escalated_conversations"]) == (3, 1)
    metrics = section(page, "metrics")
    assert '<option value="agent:inventory">' in metrics
    assert '<option value="persona:support">' in metrics
    assert 'data-metrics-url="/api/metrics/"' in metrics


def test_the_dashboard_counts_outcomes_not_statuses(client: Client, viewer: User, cast: Cast) -> None:
    agent = cast.subject("agent", "inventory")
    now = timezone.now()
    cast.run(agent, at=now - dt.timedelta(hours=1), took=5)
    cast.run(agent, at=now - dt.timedelta(hours=2), took=5, outcome=RunOutcome.NOT_COMPLETED)  # writes all denied
    cast.run(agent, at=now - dt.timedelta(hours=3), status=RunStatus.FAILED, took=5, outcome=RunOutcome.ESCALATED)
    cast.run(agent, at=now - dt.timedelta(minutes=5), status=RunStatus.AWAITING_APPROVAL)  # not finished
    metrics = section(index_page(client, viewer), "metrics")
    completion = re.search(r'<div id="metrics-completion">.*?</div>', metrics, re.DOTALL)
    assert completion
    text = " ".join(re.sub(r"<[^>]+>", "", completion.group(0)).split())
    assert text == (
        "Task completion rate33.3 % 1 completed of 3 finished runs; 1 not completed, 1 escalated (2 ended succeeded)"
    )
    assert '<span data-figure="run_escalation_rate" data-format="percent">33.3 %</span> runs' in metrics
    row = re.search(r'<table class="console-table" id="metrics-agents">.*?<tbody>(.*?)</tbody>', metrics, re.DOTALL)
    assert row
    cells = re.findall(r'<td class="console-number">([^<]*)</td>', row.group(1))
    assert cells[:4] == ["4", "33.3 %", "1", "1"]  # runs started, completion, not completed, escalated


def test_the_page_loads_nothing_from_elsewhere(client: Client, admin: User, activity: dict[str, Any]) -> None:
    page = index_page(client, admin)
    sources = re.findall(r'<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)="([^"]*)"', page)
    assert any(source.endswith("console/vendor/uPlot.iife.min.js") for source in sources)
    assert any(source.endswith("console/dashboard.js") for source in sources)
    assert all(source.startswith("/") and not source.startswith("//") for source in sources), sources
    for source in sources:
        if "/console/" in source:
            assert client.get(source).status_code == 200, source


def test_an_outsider_is_sent_to_sign_in(client: Client, outsider: User) -> None:
    client.force_login(outsider)
    response = client.get(INDEX)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


# --- queries -----------------------------------------------------------------------------------------------------

# The admin's own (session, user, the user's and their groups' permissions, recent actions) and the dashboard's:
# review items (counts, rows), runs of the last 24 hours, the last verification and checkpoint, and the metrics
# (runs, their policy interventions, run medians, conversations, messages, conversation medians, agents and
# personas).
INDEX_QUERIES = 5 + 2 + 1 + 2 + 7


def populate(cast: Cast, size: int) -> None:
    now = timezone.now()
    agent, persona = cast.subject("agent", f"agent-{size}"), cast.subject("persona", f"persona-{size}")
    for number in range(size):
        cast.run(agent, at=now - dt.timedelta(minutes=number + 1), took=number + 1, cost="0.01")
        conversation = cast.conversation(persona, at=now - dt.timedelta(days=number % 30), took=60, rating=4)
        cast.message(conversation, Role.USER, "guardrail.deny")
        cast.handover(conversation)
        cast.review_item(
            kind=ReviewKind.TOOL_APPROVAL, label=f"approval {number}", due=now - dt.timedelta(minutes=number)
        )


@pytest.mark.parametrize("size", [1, 20])
def test_the_index_makes_the_same_number_of_queries_however_much_data(
    client: Client, admin: User, cast: Cast, size: int, django_assert_num_queries: Any
) -> None:
    populate(cast, size)
    client.force_login(admin)
    client.get(INDEX)  # the first request of a session may touch it; the count is of a page view after it
    with django_assert_num_queries(INDEX_QUERIES):
        response = client.get(INDEX)
    assert response.status_code == 200
    assert response.content.decode().count('class="review-row') == min(2 * size, REVIEW_ROWS)


def test_a_viewer_costs_fewer_queries_and_as_few_with_more_data(
    client: Client, viewer: User, cast: Cast, django_assert_num_queries: Any
) -> None:
    populate(cast, 1)
    client.force_login(viewer)
    client.get(INDEX)
    with django_assert_num_queries(INDEX_QUERIES - 2):  # no audit chain
        client.get(INDEX)
    populate(cast, 20)
    with django_assert_num_queries(INDEX_QUERIES - 2):
        client.get(INDEX)
