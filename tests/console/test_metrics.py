"""The metrics on a small known data set (``console.selectors.metrics``), and ``GET /api/metrics/``: its
parameters, its filters, its errors and who may read it."""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import RunOutcome, RunStatus, StepKind, StepStatus
from console import selectors
from governance.models import GovernedObject, ReviewStatus
from personas.models import Role
from tests.console.conftest import Cast

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
NOV_18, NOV_19, NOV_20 = dt.date(2026, 11, 18), dt.date(2026, 11, 19), dt.date(2026, 11, 20)


def at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC)


@dataclass
class World:
    inventory: GovernedObject
    risk: GovernedObject
    support: GovernedObject
    sales: GovernedObject


@pytest.fixture
def world(cast: Cast) -> World:
    """Two agents, two personas, and their activity on 18 to 20 November (plus some from before the period)."""
    inventory, risk = cast.subject("agent", "inventory"), cast.subject("agent", "risk")
    support, sales = cast.subject("persona", "support"), cast.subject("persona", "sales")

    cast.run(inventory, at=at(NOV_19, 10), cost="0.50", took=60)
    cast.run(inventory, at=at(NOV_19, 11), cost="0.25", took=120)
    failed = cast.run(
        inventory, at=at(NOV_20, 9), status=RunStatus.FAILED, cost="0.10", took=30, outcome=RunOutcome.ESCALATED
    )
    cast.step(failed, StepKind.GUARDRAIL, StepStatus.DENIED, detail={"checkpoint": "input", "effect": "escalate"})
    cast.run(inventory, at=at(NOV_20, 10), status=RunStatus.RUNNING, cost="0.05")
    # Succeeded, but every tool call was denied: not completed.
    hedged = cast.run(risk, at=at(NOV_20, 8), cost="1.00", took=300, outcome=RunOutcome.NOT_COMPLETED)
    cast.step(hedged, StepKind.LLM_CALL, StepStatus.SUCCEEDED)
    cast.step(hedged, StepKind.TOOL_CALL, StepStatus.DENIED, detail={"guardrail": {"effect": "deny"}})
    cast.step(hedged, StepKind.TOOL_CALL, StepStatus.DENIED, detail={"tool_name": "x"})  # a constraint, not a policy
    cancelled = cast.run(risk, at=at(NOV_18, 15), status=RunStatus.CANCELLED, took=10)
    parked = cast.review_item(reason="policy: hedges need a second look", created=at(NOV_18, 15))
    cast.step(cancelled, StepKind.TOOL_CALL, StepStatus.DENIED, review=parked)
    asked = cast.review_item(reason="the grant for 'hedge' always needs approval", created=at(NOV_18, 15))
    cast.step(cancelled, StepKind.TOOL_CALL, StepStatus.SUCCEEDED, review=asked)  # approval, but not a policy's
    cast.run(risk, at=dt.datetime(2026, 10, 1, tzinfo=dt.UTC), cost="9.00", took=5)  # before the period

    first = cast.conversation(support, at=at(NOV_19, 10), took=600, rating=5)
    cast.message(first)
    cast.message(first, Role.PERSONA, "style.warn", violations=["guardrail.deny is only a word here"])
    cast.message(first, Role.USER, "guardrail.deny")
    cast.handover(first, status=ReviewStatus.RESOLVED)
    second = cast.conversation(support, at=at(NOV_20, 9), took=1200, rating=3)
    cast.message(second)
    second_answer = cast.message(second, Role.PERSONA, "phrasing.model")
    second_answer.flags.append({"kind": "guardrail.redact", "policies": ["pii v1"], "reasons": ["an email"]})
    second_answer.save(update_fields=["flags"])
    third = cast.conversation(support, at=at(NOV_20, 10))
    cast.message(third)
    cast.message(third)
    cast.handover(third)
    fourth = cast.conversation(sales, at=at(NOV_18, 8), took=60)
    cast.message(fourth, Role.USER, "guardrail.escalate")
    old = cast.conversation(sales, at=dt.datetime(2026, 10, 1, tzinfo=dt.UTC), took=60, rating=1)
    cast.message(old, Role.USER, "guardrail.deny")
    cast.handover(old)
    return World(inventory, risk, support, sales)


def by_slug(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["slug"]: row for row in rows}


def by_date(result: dict[str, Any]) -> dict[dt.date, dict[str, Any]]:
    return {row["date"]: row for row in result["daily"]}


def test_the_totals_of_the_period(world: World) -> None:
    totals = selectors.metrics(days=30, now=NOW)["totals"]
    assert totals == {
        "runs_started": 6,
        "runs_finished": 5,
        "runs_succeeded": 3,
        "runs_completed": 2,
        "runs_not_completed": 2,
        "runs_escalated": 1,
        "task_completion_rate": 0.4,
        "run_escalation_rate": 0.2,
        "median_run_resolution_seconds": 60.0,  # of 10, 30, 60, 120 and 300 s
        "conversations_started": 4,
        "conversations_closed": 3,
        "median_conversation_resolution_seconds": 600.0,  # of 60, 600 and 1200 s
        "user_satisfaction": 4.0,
        "ratings": 2,
        "policy_violations": 6,
        "policy_violations_in_conversations": 3,
        "policy_violations_in_runs": 3,
        "user_messages": 6,
        "interactions": 12,
        "policy_violations_per_100_interactions": 50.0,
        "escalated_conversations": 2,
        "escalation_rate": 0.5,
        "cost": Decimal("1.90"),
    }


def test_the_period_is_whole_days_ending_today(db: None) -> None:
    result = selectors.metrics(days=30, now=NOW)
    assert result["start"] == dt.datetime(2026, 10, 22, tzinfo=dt.UTC)
    assert result["end"] == dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
    assert [row["date"] for row in result["daily"]][:2] == [dt.date(2026, 10, 22), dt.date(2026, 10, 23)]
    assert len(result["daily"]) == 30
    assert result["daily"][-1]["date"] == NOV_20


def test_per_day(world: World) -> None:
    daily = by_date(selectors.metrics(days=30, now=NOW))
    nov_18, nov_19, nov_20 = daily[NOV_18], daily[NOV_19], daily[NOV_20]
    assert (nov_19["runs_started"], nov_19["task_completion_rate"], nov_19["cost"]) == (2, 1.0, Decimal("0.75"))
    assert nov_19["median_run_resolution_seconds"] == 90.0  # the two middle values (60 and 120 s) averaged
    assert (nov_20["runs_started"], nov_20["runs_finished"], nov_20["task_completion_rate"]) == (3, 2, 0.0)
    assert (nov_20["runs_succeeded"], nov_20["runs_not_completed"], nov_20["run_escalation_rate"]) == (1, 1, 0.5)
    assert nov_20["median_run_resolution_seconds"] == 165.0
    assert nov_20["policy_violations_in_runs"] == 2  # the input guardrail, and the tool call a policy denied
    assert (nov_18["task_completion_rate"], nov_18["policy_violations_in_runs"]) == (0.0, 1)
    assert (nov_19["user_satisfaction"], nov_19["escalation_rate"], nov_19["policy_violations"]) == (5.0, 1.0, 1)
    assert (nov_20["conversations_started"], nov_20["escalated_conversations"]) == (2, 1)
    assert nov_20["median_conversation_resolution_seconds"] == 1200.0
    assert (nov_20["interactions"], nov_20["policy_violations"]) == (3 + 3, 2 + 1)
    assert nov_20["policy_violations_per_100_interactions"] == 50.0
    quiet = daily[dt.date(2026, 11, 1)]
    assert (quiet["runs_started"], quiet["task_completion_rate"], quiet["user_satisfaction"]) == (0, None, None)
    assert (quiet["median_run_resolution_seconds"], quiet["cost"]) == (None, Decimal(0))


def test_per_agent_and_per_persona(world: World) -> None:
    result = selectors.metrics(days=30, now=NOW)
    agents, personas = by_slug(result["agents"]), by_slug(result["personas"])
    assert list(agents) == ["inventory", "risk"]
    assert list(personas) == ["sales", "support"]
    inventory, risk = agents["inventory"], agents["risk"]
    assert (inventory["runs_started"], inventory["task_completion_rate"], inventory["cost"]) == (
        4,
        0.6667,
        Decimal("0.90"),
    )
    assert (inventory["median_run_resolution_seconds"], inventory["policy_violations"]) == (60.0, 1)
    assert inventory["policy_violations_per_100_interactions"] == 25.0  # 1 in 4 runs
    assert (risk["task_completion_rate"], risk["median_run_resolution_seconds"], risk["cost"]) == (
        0.0,
        155.0,
        Decimal("1.00"),
    )
    assert (risk["runs_succeeded"], risk["runs_not_completed"], inventory["runs_escalated"]) == (1, 2, 1)
    assert (risk["policy_violations"], inventory["conversations_started"]) == (2, 0)
    support, sales = personas["support"], personas["sales"]
    assert (support["conversations_started"], support["user_satisfaction"], support["escalation_rate"]) == (
        3,
        4.0,
        0.6667,
    )
    assert (support["median_conversation_resolution_seconds"], support["policy_violations_per_100_interactions"]) == (
        900.0,
        40.0,
    )
    assert (sales["user_satisfaction"], sales["ratings"], sales["escalation_rate"]) == (None, 0, 0.0)
    assert (sales["policy_violations_per_100_interactions"], sales["runs_started"]) == (100.0, 0)


def test_an_agent_filter_keeps_its_runs_only(world: World) -> None:
    result = selectors.metrics(days=30, agent=world.risk, now=NOW)
    assert (result["agent"], result["persona"]) == ("risk", None)
    assert [row["slug"] for row in result["agents"]] == ["risk"]
    assert result["personas"] == []
    totals = result["totals"]
    assert totals == {key: value for key, value in by_slug(result["agents"])["risk"].items() if key in totals}
    assert (totals["runs_started"], totals["conversations_started"], totals["escalation_rate"]) == (2, 0, None)


def test_a_persona_filter_keeps_its_conversations_only(world: World) -> None:
    result = selectors.metrics(days=30, persona=world.sales, now=NOW)
    assert (result["agents"], [row["slug"] for row in result["personas"]]) == ([], ["sales"])
    totals = result["totals"]
    assert (totals["runs_started"], totals["conversations_started"], totals["cost"]) == (0, 1, Decimal(0))
    assert totals["policy_violations_per_100_interactions"] == 100.0


def test_both_filters_keep_the_agent_and_the_persona(world: World) -> None:
    result = selectors.metrics(days=30, agent=world.inventory, persona=world.support, now=NOW)
    totals = result["totals"]
    assert (totals["runs_started"], totals["conversations_started"]) == (4, 3)
    assert (totals["interactions"], totals["policy_violations"]) == (4 + 5, 1 + 2)


def test_a_shorter_period(world: World) -> None:
    result = selectors.metrics(days=1, now=NOW)
    assert [row["date"] for row in result["daily"]] == [NOV_20]
    totals = result["totals"]
    assert (totals["runs_started"], totals["conversations_started"], totals["cost"]) == (3, 2, Decimal("1.15"))
    assert totals["median_conversation_resolution_seconds"] == 1200.0


@pytest.mark.parametrize("days", [0, 91])
def test_the_selector_refuses_a_period_out_of_range(days: int) -> None:
    with pytest.raises(ValueError, match="days must be from 1 to 90"):
        selectors.metrics(days=days, now=NOW)


def queries_of_metrics(**kwargs: Any) -> int:
    with CaptureQueriesContext(connection) as captured:
        selectors.metrics(days=30, now=NOW, **kwargs)
    return len(captured.captured_queries)


def test_the_number_of_queries_does_not_grow_with_the_data(cast: Cast) -> None:
    agent, persona = cast.subject("agent", "busy"), cast.subject("persona", "chatty")
    empty = queries_of_metrics()
    for hour in range(12):
        run = cast.run(agent, at=at(NOV_19, hour), took=hour + 1)
        cast.step(run, StepKind.GUARDRAIL, StepStatus.DENIED)
        conversation = cast.conversation(persona, at=at(NOV_20, hour), took=10, rating=4)
        cast.message(conversation, Role.USER, "guardrail.deny")
        cast.handover(conversation)
    cast.subject("agent", "another")
    assert queries_of_metrics() == empty == 7
    assert queries_of_metrics(agent=agent) == 4


# --- the API ---------------------------------------------------------------------------------------------------------

URL = "/api/metrics/"


@pytest.fixture
def recent(cast: Cast) -> World:
    """Activity of the last few days, relative to the real clock (the API has no ``now`` parameter)."""
    inventory, risk = cast.subject("agent", "inventory"), cast.subject("agent", "risk")
    support, sales = cast.subject("persona", "support"), cast.subject("persona", "sales")
    now = timezone.now()
    cast.run(inventory, at=now - dt.timedelta(seconds=1), cost="0.40", took=1)
    cast.run(risk, at=now - dt.timedelta(seconds=1), status=RunStatus.FAILED, cost="0.20", took=1)
    cast.run(risk, at=now - dt.timedelta(days=10), cost="1.00", took=2, outcome=RunOutcome.NOT_COMPLETED)
    chat = cast.conversation(support, at=now - dt.timedelta(seconds=1), took=30, rating=4)
    cast.message(chat)
    cast.handover(chat)
    cast.conversation(sales, at=now - dt.timedelta(days=10))
    return World(inventory, risk, support, sales)


def test_the_api_gives_the_last_30_days_by_default(
    recent: World, viewer: User, api_as: Callable[[User], APIClient]
) -> None:
    response = api_as(viewer).get(URL)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["days"], body["agent"], body["persona"], len(body["daily"])) == (30, None, None, 30)
    totals = body["totals"]
    assert (totals["runs_started"], totals["task_completion_rate"], totals["cost"]) == (3, 0.3333, "1.600000")
    assert (totals["runs_completed"], totals["runs_not_completed"], totals["runs_escalated"]) == (1, 2, 0)
    assert (totals["conversations_started"], totals["escalation_rate"], totals["user_satisfaction"]) == (2, 0.5, 4.0)
    assert body["daily"][-1]["date"] == timezone.localdate().isoformat()
    assert body["daily"][-1]["runs_started"] == 2
    assert [row["slug"] for row in body["agents"]] == ["inventory", "risk"]
    assert [row["slug"] for row in body["personas"]] == ["sales", "support"]


def test_the_api_takes_days_agent_and_persona(recent: World, viewer: User, api_as: Callable[[User], APIClient]) -> None:
    client = api_as(viewer)
    week = client.get(URL, {"days": "7"}).json()
    assert (week["days"], len(week["daily"]), week["totals"]["runs_started"]) == (7, 7, 2)
    risk = client.get(URL, {"agent": "risk"}).json()
    assert (risk["agent"], risk["totals"]["runs_started"], risk["totals"]["task_completion_rate"]) == ("risk", 2, 0.0)
    assert (risk["personas"], risk["totals"]["conversations_started"]) == ([], 0)
    support = client.get(URL, {"persona": "support", "days": "90"}).json()
    assert (support["persona"], support["totals"]["conversations_started"], support["agents"]) == ("support", 1, [])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"days": "0"}, "days"),
        ({"days": "91"}, "days"),
        ({"days": "a week"}, "days"),
        ({"agent": "nobody"}, "agent"),
        ({"agent": "support"}, "agent"),  # a persona is not an agent
        ({"persona": "inventory"}, "persona"),
    ],
)
def test_bad_parameters_are_400_with_field_errors(
    recent: World, viewer: User, api_as: Callable[[User], APIClient], params: dict[str, str], field: str
) -> None:
    response = api_as(viewer).get(URL, params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [field]


def test_without_credentials_it_is_401(api: APIClient) -> None:
    assert api.get(URL).status_code == 401


def test_without_the_view_permissions_it_is_403(
    outsider: User, make_user: Callable[..., User], api_as: Callable[[User], APIClient]
) -> None:
    assert api_as(outsider).get(URL).status_code == 403
    runs_only = make_user("rita-runs-only")
    runs_only.user_permissions.add(Permission.objects.get(codename="view_run", content_type__app_label="agents"))
    assert api_as(runs_only).get(URL).status_code == 403
    response = api_as(outsider).get(URL)
    assert response.json()["error"]["code"] == "permission_denied"


def test_a_session_user_of_the_console_may_read_it(recent: World, viewer: User) -> None:
    client = APIClient()
    client.force_login(viewer)
    assert client.get(URL).status_code == 200
