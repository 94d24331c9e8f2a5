"""Agent runs end to end on a real Celery worker, through the REST API: the whole lifecycle, approvals (approve,
reject, edit, self-approval, two approvers, racing approvers, expiry), what never executes a tool (no grant, a
broken constraint, a used-up rate limit, budgets), cancelling, provider and tool failures, a worker killed in the
middle of a tool call, compensation, the idempotency key, and bad input.

Tests on the worker use committed rows (``transaction=True``) and the session's worker process, whose queue is the
default queue of this process (``celery_worker`` in ``tests/conftest.py``). The scripted provider plays the model.
"""

import contextlib
import datetime as dt
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import Run, Step, StepKind, StepStatus, Tool
from agents.services import runs_sweep
from audit.context import Actor
from audit.models import AuditEvent
from config import celery_app
from demo.agents import INVENTORY_AGENT, RISK_MONITOR
from demo.models import DemoHedge, DemoReplenishment, DemoStock
from governance.models import ReviewDecision, ReviewItem, ReviewStatus, Version
from governance.roles import Role
from governance.services import review_items_expire, user_role_assign
from tests.agents.tools import lines
from tests.support import child_environment, wait_for

ROOT = Path(__file__).resolve().parents[2]
Client = Callable[[User], APIClient]
AgentFactory = Callable[..., Version]  # the ``agent`` fixture of tests/agents/conftest.py
Test = TypeVar("Test", bound=Callable[..., Any])


def on_worker(test: Test) -> Test:
    """A test on the real worker: committed rows and the session's worker process."""
    for mark in (pytest.mark.usefixtures("celery_worker"), pytest.mark.django_db(transaction=True), pytest.mark.worker):
        test = mark(test)
    return test


# --- agents -------------------------------------------------------------------------------------------------------


def spec(
    script: list[dict[str, Any]],
    grants: list[dict[str, Any]],
    *,
    budgets: dict[str, Any] | None = None,
    autonomy: str = "autonomous",
) -> dict[str, Any]:
    return {
        "instructions": "An agent for a test.",
        "model": {"provider": "scripted", "name": "test-script"},
        "autonomy": autonomy,
        "budgets": budgets or {"steps": 20},
        "grants": grants,
        "script": script,
    }


def append_script(tool: str = "test.append") -> list[dict[str, Any]]:
    """Call ``tool`` once with the input's path and text (and quantity, for test.append); answer with the outcome."""
    arguments = {"path": "input.path", "text": "input.text"}
    if tool == "test.append":
        arguments["quantity"] = "input.quantity"
    return [
        {"call": tool, "arguments": arguments},
        {"when": "has(last.error)", "answer": "Not written: {{ last.error }}"},
        {"answer": "Wrote {{ last.text }}."},
    ]


APPEND = append_script()


def line_input(path: Path, text: str, quantity: int = 1) -> dict[str, Any]:
    return {"path": str(path), "text": text, "quantity": quantity}


# --- the API ------------------------------------------------------------------------------------------------------


def start(client: APIClient, slug: str, run_input: dict[str, Any], **extra: Any) -> dict[str, Any]:
    response = client.post(f"/api/agents/{slug}/runs/", {"input": run_input, **extra}, format="json")
    assert response.status_code == 202, response.json()
    return response.json()


def detail(client: APIClient, run_id: str) -> dict[str, Any]:
    response = client.get(f"/api/runs/{run_id}/")
    assert response.status_code == 200, response.json()
    return response.json()


def at_rest(client: APIClient, run_id: str, *, timeout: float = 20) -> dict[str, Any]:
    """The run once the worker has left it: finished, or parked for a person."""
    return wait_for(
        lambda: (run := detail(client, run_id))["status"] not in ("queued", "running") and run,
        timeout=timeout,
        message=f"run {run_id} to finish or park",
    )


def tool_steps(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for step in run["steps"] if step["kind"] == "tool_call"]


def approval_of(client: APIClient, run: dict[str, Any]) -> dict[str, Any]:
    """The pending approval of a parked run, as a decider is shown it (with its digest)."""
    (step,) = [step for step in run["steps"] if step["status"] == "awaiting_approval"]
    response = client.get(f"/api/approvals/{step['approval']}/")
    assert response.status_code == 200, response.json()
    return response.json()


def decide(client: APIClient, approval: dict[str, Any], decision: str, **extra: Any) -> Any:
    body = {"decision": decision, "digest": approval["digest"], **extra}
    return client.post(f"/api/approvals/{approval['id']}/decide/", body, format="json")


def actions(run: dict[str, Any]) -> list[str]:
    """The audit trail of the run, in order (its events share the run's correlation id)."""
    events = AuditEvent.objects.filter(correlation_id=run["correlation_id"]).order_by("sequence")
    return list(events.values_list("action", flat=True))


def second_approver(make_user: Callable[..., User], name: str = "abe-approver") -> User:
    return make_user(name, Role.APPROVER)


# --- the whole lifecycle ------------------------------------------------------------------------------------------


@on_worker
def test_a_run_checks_writes_and_answers_with_its_audit_trail(
    agent: AgentFactory, operator: User, api_as: Client
) -> None:
    DemoStock.objects.create(sku="SKU-123", on_hand=4, reorder_point=20)
    version = agent("inventory-agent", INVENTORY_AGENT)
    client = api_as(operator)

    started = start(client, "inventory-agent", {"sku": "SKU-123", "quantity": 50})
    assert (started["status"], started["requested_by"]) == ("queued", operator.username)
    assert started["version"] == version.number
    run = at_rest(client, started["id"])

    order = DemoReplenishment.objects.get()
    assert run["status"] == "succeeded", run
    assert run["result"] == {"answer": f"Ordered 50 units of SKU-123 (order {order.pk})."}
    assert [(step["seq"], step["kind"], step["tool"], step["status"]) for step in run["steps"]] == [
        (1, "llm_call", "", "succeeded"),
        (2, "tool_call", "inventory.check_stock", "succeeded"),
        (3, "llm_call", "", "succeeded"),
        (4, "tool_call", "inventory.place_replenishment", "succeeded"),
        (5, "llm_call", "", "succeeded"),
        (6, "message", "", "succeeded"),
    ]
    assert run["steps"][1]["result"] == {"sku": "SKU-123", "on_hand": 4, "reorder_point": 20}
    assert run["steps"][3]["arguments"] == {"sku": "SKU-123", "quantity": 50}
    assert (order.sku, order.quantity, order.idempotency_key) == ("SKU-123", 50, f"{run['id']}:4")
    assert run["steps_used"] == 5
    assert run["tokens_used"] == sum(step["tokens"] for step in run["steps"]) > 0

    trail = actions(run)
    assert trail[0] == "agent.run.started"
    assert trail[-1] == "agent.run.succeeded"
    assert trail.count("agent.model.called") == 3
    assert trail.count("agent.tool.executing") == trail.count("agent.tool.succeeded") == 2
    assert trail.index("agent.tool.executing") < trail.index("agent.tool.succeeded")


# --- approvals ----------------------------------------------------------------------------------------------------


@on_worker
def test_a_run_waiting_for_approval_holds_no_worker_and_resumes_once_approved(
    agent: AgentFactory, operator: User, approver: User, api_as: Client, tmp_path: Path
) -> None:
    agent("careful", spec(APPEND, [{"tool": "test.append", "approval": "always"}]))
    agent("quick", spec(APPEND, [{"tool": "test.append"}]))
    client = api_as(operator)
    careful_file, quick_file = tmp_path / "careful.txt", tmp_path / "quick.txt"

    parked = at_rest(client, start(client, "careful", line_input(careful_file, "careful"))["id"])
    assert parked["status"] == "awaiting_approval", parked
    (step,) = tool_steps(parked)
    assert (step["tool"], step["status"]) == ("test.append", "awaiting_approval")
    assert lines(careful_file) == []

    # The solo worker is free: another run goes all the way while the first one waits.
    quick = at_rest(client, start(client, "quick", line_input(quick_file, "quick"))["id"])
    assert quick["status"] == "succeeded", quick
    assert lines(quick_file) == ["quick"]
    assert detail(client, parked["id"])["status"] == "awaiting_approval"

    deciders = api_as(approver)
    approval = approval_of(deciders, parked)
    assert approval["status"] == "pending"
    assert approval["approvals_required"] == 1
    assert approval["payload"]["tool"] == "test.append"
    assert approval["payload"]["arguments"] == line_input(careful_file, "careful")
    assert "always needs approval" in approval["reason"]
    response = decide(deciders, approval, "approve", comment="fine")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "approved"

    run = at_rest(client, parked["id"])
    assert run["status"] == "succeeded", run
    assert run["result"] == {"answer": "Wrote careful."}
    assert lines(careful_file) == ["careful"]
    trail = actions(run)
    assert trail.count("agent.approval.requested") == trail.count("agent.approval.approved") == 1
    assert trail.count("agent.tool.executing") == 1


@on_worker
def test_a_rejection_reaches_the_model(
    agent: AgentFactory, operator: User, approver: User, api_as: Client, tmp_path: Path
) -> None:
    agent("careful", spec(APPEND, [{"tool": "test.append", "approval": "always"}]))
    client, deciders = api_as(operator), api_as(approver)
    parked = at_rest(client, start(client, "careful", line_input(tmp_path / "out.txt", "no"))["id"])

    response = decide(deciders, approval_of(deciders, parked), "reject", comment="not today")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "rejected"

    run = at_rest(client, parked["id"])
    why = "rejected by april-approver (Approver): not today"
    assert run["status"] == "succeeded", run
    assert [(step["status"], step["error"]) for step in tool_steps(run)] == [("denied", why)]
    assert run["result"] == {"answer": f"Not written: {why}"}
    assert lines(tmp_path / "out.txt") == []
    assert "agent.tool.executing" not in actions(run)


@on_worker
def test_an_edited_approval_runs_the_tool_with_the_edited_arguments(
    agent: AgentFactory, operator: User, approver: User, api_as: Client, tmp_path: Path
) -> None:
    agent("careful", spec(APPEND, [{"tool": "test.append", "approval": "always"}]))
    client, deciders = api_as(operator), api_as(approver)
    parked = at_rest(client, start(client, "careful", line_input(tmp_path / "out.txt", "as proposed", 5))["id"])
    approval = approval_of(deciders, parked)

    edited = line_input(tmp_path / "out.txt", "as edited", 2)
    response = decide(deciders, approval, "edit", arguments=edited, comment="smaller")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "approved"
    assert response.json()["payload"]["arguments"] == edited

    run = at_rest(client, parked["id"])
    assert run["status"] == "succeeded", run
    (step,) = tool_steps(run)
    assert (step["status"], step["arguments"]) == ("succeeded", edited)
    assert step["result"] == {"text": "as edited", "quantity": 2, "lines": 1}
    assert lines(tmp_path / "out.txt") == ["as edited"]
    assert run["result"] == {"answer": "Wrote as edited."}
    assert "agent.approval.edited" in actions(run)


@on_worker
def test_the_requester_cannot_approve_their_own_run(
    agent: AgentFactory, make_user: Callable[..., User], approver: User, api_as: Client, tmp_path: Path
) -> None:
    both = make_user("sam-both", Role.OPERATOR)
    user_role_assign(actor=Actor.system("tests"), user=both, role=Role.APPROVER)
    agent("careful", spec(APPEND, [{"tool": "test.append", "approval": "always"}]))
    client = api_as(both)
    parked = at_rest(client, start(client, "careful", line_input(tmp_path / "out.txt", "mine"))["id"])
    approval = approval_of(client, parked)

    refused = decide(client, approval, "approve")
    assert refused.status_code == 403, refused.json()
    assert refused.json()["error"]["code"] == "self_review"
    edited = decide(client, approval, "edit", arguments=line_input(tmp_path / "out.txt", "sneaky"))
    assert edited.status_code == 403, edited.json()
    assert edited.json()["error"]["code"] == "self_review"

    item = ReviewItem.objects.get(pk=approval["id"])
    assert item.status == ReviewStatus.PENDING
    assert item.payload["arguments"]["text"] == "mine"
    assert not item.decisions.exists()
    assert detail(client, parked["id"])["status"] == "awaiting_approval"

    # Someone else may.
    deciders = api_as(approver)
    assert decide(deciders, approval_of(deciders, parked), "approve").status_code == 200
    assert at_rest(client, parked["id"])["status"] == "succeeded"
    assert lines(tmp_path / "out.txt") == ["mine"]


@on_worker
def test_a_critical_tool_needs_two_distinct_approvers(
    agent: AgentFactory, operator: User, approver: User, make_user: Callable[..., User], api_as: Client
) -> None:
    agent("risk-monitor", RISK_MONITOR)
    client, first, second = api_as(operator), api_as(approver), api_as(second_approver(make_user))
    parked = at_rest(client, start(client, "risk-monitor", {"portfolio": "fx-eur"})["id"])
    assert parked["status"] == "awaiting_approval", parked
    approval = approval_of(first, parked)
    assert (approval["risk"], approval["approvals_required"]) == ("critical", 2)
    assert approval["payload"]["arguments"] == {"instrument": "fx-eur", "notional": 1250000.0}

    assert decide(first, approval, "approve").status_code == 200
    again = decide(first, approval, "approve")
    assert again.status_code == 409, again.json()
    assert ReviewItem.objects.get(pk=approval["id"]).status == ReviewStatus.PENDING
    time.sleep(0.3)  # were the run resumed now, the worker would be at it
    assert detail(client, parked["id"])["status"] == "awaiting_approval"
    assert not DemoHedge.objects.exists()

    assert decide(second, approval_of(second, parked), "approve").status_code == 200
    run = at_rest(client, parked["id"])
    hedge = DemoHedge.objects.get()
    assert run["status"] == "succeeded", run
    assert (hedge.instrument, hedge.notional) == ("fx-eur", 1250000)
    assert run["result"] == {"answer": f"Hedged 1250000.0 on fx-eur (hedge {hedge.pk})."}
    decisions = ReviewDecision.objects.filter(item_id=approval["id"])
    assert sorted(decisions.values_list("decider_label", flat=True)) == ["abe-approver", "april-approver"]
    # The run's own record names both approvers, in the order they decided.
    (approved,) = AuditEvent.objects.filter(action="agent.approval.approved", correlation_id=run["correlation_id"])
    assert approved.details["why"].startswith("approved by april-approver (Approver) and abe-approver (Approver)")


@on_worker
def test_racing_approvers_resume_the_run_exactly_once(
    agent: AgentFactory,
    operator: User,
    approver: User,
    make_user: Callable[..., User],
    api_as: Client,
    tmp_path: Path,
) -> None:
    agent("critical", spec(append_script("test.critical"), [{"tool": "test.critical", "approval": "always"}]))
    client = api_as(operator)
    parked = at_rest(client, start(client, "critical", line_input(tmp_path / "out.txt", "once"))["id"])
    deciders = [approver, second_approver(make_user), second_approver(make_user, "bea-approver")]
    approval = approval_of(api_as(approver), parked)
    assert approval["approvals_required"] == 2
    clients = [api_as(user) for user in deciders]
    barrier = threading.Barrier(len(clients))

    def approve(decider: APIClient) -> int:
        try:
            barrier.wait(timeout=10)
            return decide(decider, approval, "approve").status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        codes = sorted(pool.map(approve, clients))

    assert codes == [200, 200, 409]
    run = at_rest(client, parked["id"])
    assert run["status"] == "succeeded", run
    assert lines(tmp_path / "out.txt") == ["once"]
    trail = actions(run)
    assert trail.count("agent.approval.approved") == 1
    assert trail.count("agent.tool.executing") == 1
    assert ReviewDecision.objects.filter(item_id=approval["id"]).count() == 2


@on_worker
def test_an_expired_approval_denies_the_call_and_the_model_is_told(
    agent: AgentFactory, operator: User, api_as: Client, tmp_path: Path
) -> None:
    agent("careful", spec(APPEND, [{"tool": "test.append", "approval": "always"}]))
    client = api_as(operator)
    parked = at_rest(client, start(client, "careful", line_input(tmp_path / "out.txt", "late"))["id"])
    (step,) = tool_steps(parked)
    ReviewItem.objects.filter(pk=step["approval"]).update(due_at=timezone.now() - dt.timedelta(minutes=1))

    assert review_items_expire() == 1

    run = at_rest(client, parked["id"])
    why = "the approval expired before anyone decided: expiry denies"
    assert run["status"] == "succeeded", run
    assert [(step["status"], step["error"]) for step in tool_steps(run)] == [("denied", why)]
    assert run["result"] == {"answer": f"Not written: {why}"}
    assert ReviewItem.objects.get(pk=step["approval"]).status == ReviewStatus.EXPIRED
    assert lines(tmp_path / "out.txt") == []


# --- what never executes a tool -----------------------------------------------------------------------------------


def _retire_append() -> None:
    Tool.objects.filter(name="test.append").update(available=False)


@on_worker
@pytest.mark.parametrize(
    ("grant", "quantity", "after_release", "reason"),
    [
        pytest.param(
            {"constraints": ["args.quantity <= 10"]},
            11,
            None,
            "the arguments break the constraint 'args.quantity <= 10'",
            id="constraint",
        ),
        pytest.param(
            {"expires_at": "2020-01-31T18:00:00Z"},
            1,
            None,
            "the grant for 'test.append' expired at 2020-01-31T18:00:00+00:00",
            id="expired-grant",
        ),
        # A script may only call granted tools (the spec is refused otherwise); a tool whose code is gone is not
        # granted any more.
        pytest.param({}, 1, _retire_append, "the agent has no grant for the tool 'test.append'", id="no-grant"),
    ],
)
def test_a_call_the_grant_does_not_allow_never_executes(
    agent: AgentFactory,
    operator: User,
    api_as: Client,
    tmp_path: Path,
    grant: dict[str, Any],
    quantity: int,
    after_release: Callable[[], None] | None,
    reason: str,
) -> None:
    agent("limited", spec(APPEND, [{"tool": "test.append", **grant}]))
    if after_release is not None:
        after_release()
    client = api_as(operator)

    run = at_rest(client, start(client, "limited", line_input(tmp_path / "out.txt", "no", quantity))["id"])

    assert run["status"] == "succeeded", run
    assert [(step["status"], step["error"]) for step in tool_steps(run)] == [("denied", reason)]
    assert run["result"] == {"answer": f"Not written: {reason}"}
    assert lines(tmp_path / "out.txt") == []
    trail = actions(run)
    assert "agent.tool.denied" in trail
    assert "agent.tool.executing" not in trail


@on_worker
def test_a_used_up_rate_limit_denies_the_next_call(
    agent: AgentFactory, operator: User, api_as: Client, tmp_path: Path
) -> None:
    agent("limited", spec(APPEND, [{"tool": "test.append", "rate_limit": {"calls": 1, "per_seconds": 3600}}]))
    client = api_as(operator)

    first = at_rest(client, start(client, "limited", line_input(tmp_path / "out.txt", "one"))["id"])
    second = at_rest(client, start(client, "limited", line_input(tmp_path / "out.txt", "two"))["id"])

    reason = "the rate limit of 1 calls per 3600 s is used up"
    assert (first["status"], first["result"]) == ("succeeded", {"answer": "Wrote one."})
    assert second["status"] == "succeeded", second
    assert [(step["status"], step["error"]) for step in tool_steps(second)] == [("denied", reason)]
    assert second["result"] == {"answer": f"Not written: {reason}"}
    assert lines(tmp_path / "out.txt") == ["one"]


@on_worker
@pytest.mark.parametrize(
    ("steps", "stopped"),
    [
        pytest.param(3, "stopped before a tool call: the step budget (3) would be exceeded", id="before-the-tool"),
        pytest.param(2, "stopped before a model call: the step budget (2) would be exceeded", id="before-the-model"),
    ],
)
def test_a_budget_stops_the_run_before_the_call_that_would_exceed_it(
    agent: AgentFactory, operator: User, api_as: Client, tmp_path: Path, steps: int, stopped: str
) -> None:
    arguments = {"path": "input.path", "text": "'first'"}
    script: list[dict[str, Any]] = [
        {"call": "test.append", "arguments": arguments},
        {"call": "test.append", "arguments": {**arguments, "text": "'second'"}},
        {"answer": "Wrote twice."},
    ]
    agent("frugal", spec(script, [{"tool": "test.append"}], budgets={"steps": steps}))
    client = api_as(operator)

    run = at_rest(client, start(client, "frugal", {"path": str(tmp_path / "out.txt")})["id"])

    assert run["status"] == "failed", run
    assert run["error"] == f"Budget: {stopped.split(': ', 1)[1]}."
    assert run["steps_used"] == steps
    assert (run["steps"][-1]["kind"], run["steps"][-1]["error"]) == ("error", stopped)
    assert lines(tmp_path / "out.txt") == ["first"]
    assert actions(run).count("agent.tool.executing") == 1


# --- cancelling ---------------------------------------------------------------------------------------------------


@on_worker
def test_cancelling_a_parked_run_ends_it_at_once_and_withdraws_its_approval(
    agent: AgentFactory, operator: User, approver: User, api_as: Client, tmp_path: Path
) -> None:
    agent("careful", spec(APPEND, [{"tool": "test.append", "approval": "always"}]))
    client = api_as(operator)
    parked = at_rest(client, start(client, "careful", line_input(tmp_path / "out.txt", "never"))["id"])
    approval = approval_of(api_as(approver), parked)

    response = client.post(f"/api/runs/{parked['id']}/cancel/", {"reason": "changed my mind"}, format="json")

    assert response.status_code == 200, response.json()
    run = response.json()
    assert (run["status"], run["error"]) == ("cancelled", "Cancelled by otto-operator: changed my mind")
    assert [(step["status"], step["error"]) for step in tool_steps(run)] == [("denied", "the run was cancelled")]
    assert ReviewItem.objects.get(pk=approval["id"]).status == ReviewStatus.WITHDRAWN
    late = decide(api_as(approver), approval, "approve")
    assert late.status_code == 409, late.json()
    again = client.post(f"/api/runs/{parked['id']}/cancel/", {}, format="json")
    assert again.status_code == 409, again.json()
    assert again.json()["error"]["code"] == "finished"
    time.sleep(0.3)  # had the late approval resumed the run, the worker would be at it
    assert detail(client, parked["id"])["status"] == "cancelled"
    assert lines(tmp_path / "out.txt") == []
    trail = actions(run)
    assert "agent.run.cancel_requested" in trail
    assert trail[-1] == "agent.run.cancelled"


@on_worker
def test_cancelling_a_running_run_stops_it_at_the_next_step_boundary(
    agent: AgentFactory, operator: User, api_as: Client, tmp_path: Path
) -> None:
    script: list[dict[str, Any]] = [
        {"call": "test.slow", "arguments": {"path": "input.path", "release": "input.release"}},
        {"call": "test.append", "arguments": {"path": "input.path", "text": "'after'"}},
        {"answer": "Done."},
    ]
    agent("slowpoke", spec(script, [{"tool": "test.slow"}, {"tool": "test.append"}]))
    path, release = tmp_path / "out.txt", tmp_path / "release"
    client = api_as(operator)
    try:
        run_id = start(client, "slowpoke", {"path": str(path), "release": str(release)})["id"]
        wait_for(lambda: lines(path) == ["started slow"], message="the slow tool to start")

        response = client.post(f"/api/runs/{run_id}/cancel/", {"reason": "enough"}, format="json")
        assert response.status_code == 200, response.json()
        assert (response.json()["status"], response.json()["cancel_requested"]) == ("running", True)
    finally:
        release.touch()

    run = at_rest(client, run_id)
    assert (run["status"], run["error"]) == ("cancelled", "Cancelled on request.")
    # The call in flight finished and was recorded; nothing came after it.
    assert [(step["kind"], step["tool"], step["status"]) for step in run["steps"]] == [
        ("llm_call", "", "succeeded"),
        ("tool_call", "test.slow", "succeeded"),
    ]
    assert lines(path) == ["started slow", "slow"]


# --- failures -----------------------------------------------------------------------------------------------------


@on_worker
@pytest.mark.parametrize(
    ("script", "run_input", "error"),
    [
        pytest.param([{"answer": "Hello {{ input.name }}"}], {}, "script entry 1: ", id="expression-fails"),
        pytest.param(
            [{"when": "input.go", "answer": "Gone."}],
            {"go": False},
            "the script ran out of entries without an answer",
            id="out-of-script",
        ),
    ],
)
def test_a_failing_model_fails_the_run_with_the_reason(
    agent: AgentFactory,
    operator: User,
    api_as: Client,
    script: list[dict[str, Any]],
    run_input: dict[str, Any],
    error: str,
) -> None:
    agent("broken", spec(script, []))
    client = api_as(operator)

    run = at_rest(client, start(client, "broken", run_input)["id"])

    prefix = "scripted model 'test-script' failed after 1 attempt(s): "
    assert run["status"] == "failed", run
    assert run["error"].startswith(prefix + error), run["error"]
    assert [(step["kind"], step["status"], step["error"]) for step in run["steps"]] == [
        ("error", "failed", run["error"])
    ]
    assert actions(run)[-1] == "agent.run.failed"


@on_worker
def test_failing_tools_are_reported_to_the_model_and_the_run_goes_on(
    agent: AgentFactory, operator: User, api_as: Client
) -> None:
    script: list[dict[str, Any]] = [
        {"call": "test.boom", "arguments": {"message": "'kaput'"}},
        {"call": "test.bad_result"},
        {"call": "test.sleep", "arguments": {"seconds": "1.0"}},
        {"answer": "{{ results[0].error }} | {{ results[1].error }} | {{ results[2].error }}"},
    ]
    agent("clumsy", spec(script, [{"tool": "test.boom"}, {"tool": "test.bad_result"}, {"tool": "test.sleep"}]))
    client = api_as(operator)

    run = at_rest(client, start(client, "clumsy", {})["id"])

    assert run["status"] == "succeeded", run
    errors = [step["error"] for step in tool_steps(run)]
    assert [step["status"] for step in tool_steps(run)] == ["failed"] * 3
    assert errors[0] == "RuntimeError: kaput"
    assert errors[1].startswith("the tool returned something that is not JSON")
    assert errors[2] == "timed out after 0.5 s"
    assert run["result"] == {"answer": " | ".join(errors)}
    assert actions(run).count("agent.tool.failed") == 3


# --- a worker killed in the middle of a call ----------------------------------------------------------------------


@dataclass
class Worker:
    queue: str
    process: "subprocess.Popen[bytes]"


@pytest.fixture
def killable_worker(celery_worker: str, tmp_path: Path) -> Iterator[Worker]:
    """A worker of our own on a queue of its own, with a 2-second lease, that a test may kill."""
    queue = f"steward-kill-{uuid.uuid4().hex[:8]}"
    name = f"{queue}@localhost"
    log_path = tmp_path / "killable-worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                "solo",
                "-Q",
                queue,
                "-n",
                name,
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env={**child_environment(queue=queue), "AGENTS_LEASE_SECONDS": "2"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not celery_app.control.ping(destination=[name], timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the killable worker did not start:\n{log_path.read_text()[-3000:]}")
        yield Worker(queue, process)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def enqueued_on(queue: str) -> Iterator[None]:
    """Runs started inside go to ``queue``: they are enqueued on the default queue once their start commits."""
    before = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    try:
        yield
    finally:
        celery_app.conf.task_default_queue = before


def killed_mid_call(worker: Worker, client: APIClient, slug: str, run_input: dict[str, Any], path: Path) -> str:
    """Start a run on ``worker``, kill it with SIGKILL while the tool call is under way, and let the sweeper hand
    the run to the session's worker once the lease expired. Returns the run's id."""
    with enqueued_on(worker.queue):
        run_id = str(start(client, slug, run_input)["id"])
    wait_for(lambda: lines(path), message="the tool to start on the killable worker")
    step = Step.objects.get(run_id=run_id, kind=StepKind.TOOL_CALL)
    assert step.status == StepStatus.EXECUTING
    worker.process.kill()
    worker.process.wait(timeout=10)
    assert Run.objects.get(pk=run_id).status == "running"
    wait_for(runs_sweep, timeout=10, message="the sweeper to find the run whose lease expired")
    return run_id


SLOW: list[dict[str, Any]] = [
    {"call": "test.slow", "arguments": {"path": "input.path", "release": "input.release"}},
    {"when": "has(last.error)", "answer": "Gave up: {{ last.error }}"},
    {"answer": "Done."},
]
CHECKED = "rejected by april-approver (Approver): checked"


@on_worker
@pytest.mark.parametrize(
    ("decision", "outcome", "answer", "calls"),
    [
        pytest.param(
            "reject",
            ("denied", f"not called again: {CHECKED}"),
            f"Gave up: not called again: {CHECKED}",
            ["started slow"],
            id="rejected-not-called-again",
        ),
        pytest.param(
            "approve",
            ("succeeded", ""),
            "Done.",
            ["started slow", "started slow", "slow"],
            id="approved-called-once-more",
        ),
    ],
)
def test_a_killed_worker_loses_no_run_and_a_person_decides_whether_to_repeat_a_non_idempotent_call(
    agent: AgentFactory,
    operator: User,
    approver: User,
    api_as: Client,
    tmp_path: Path,
    settings: Any,
    killable_worker: Worker,
    decision: str,
    outcome: tuple[str, str],
    answer: str,
    calls: list[str],
) -> None:
    settings.AGENTS_LEASE_SECONDS = 2
    agent("slowpoke", spec(SLOW, [{"tool": "test.slow"}]))
    path, release = tmp_path / "out.txt", tmp_path / "release"
    client, deciders = api_as(operator), api_as(approver)
    run_input = {"path": str(path), "release": str(release)}
    try:
        run_id = killed_mid_call(killable_worker, client, "slowpoke", run_input, path)
    finally:
        release.touch()  # were the call made again, it would not wait

    parked = at_rest(client, run_id)
    assert parked["status"] == "awaiting_approval", parked
    approval = approval_of(deciders, parked)
    assert approval["payload"]["question"] == "interrupted"
    assert "it may or may not have happened" in approval["reason"]
    assert lines(path) == ["started slow"]
    edited = decide(deciders, approval, "edit", arguments=run_input)
    assert edited.status_code == 409, edited.json()
    assert edited.json()["error"]["code"] == "not_editable"

    response = decide(deciders, approval, decision, comment="checked")
    assert response.status_code == 200, response.json()
    run = at_rest(client, run_id)
    assert run["status"] == "succeeded", run
    assert [(step["status"], step["error"]) for step in tool_steps(run)] == [outcome]
    assert run["result"] == {"answer": answer}
    assert lines(path) == calls
    trail = actions(run)
    assert trail.count("agent.approval.requested") == 1
    assert trail.count("agent.tool.executing") == 1


@on_worker
def test_a_slow_call_on_a_live_worker_keeps_its_lease(
    agent: AgentFactory, operator: User, api_as: Client, tmp_path: Path, settings: Any, killable_worker: Worker
) -> None:
    settings.AGENTS_LEASE_SECONDS = 2
    agent("slowpoke", spec(SLOW, [{"tool": "test.slow"}]))
    path, release = tmp_path / "out.txt", tmp_path / "release"
    client = api_as(operator)
    try:
        with enqueued_on(killable_worker.queue):
            run_id = start(client, "slowpoke", {"path": str(path), "release": str(release)})["id"]
        wait_for(lambda: lines(path), message="the tool to start on the killable worker")
        # Half again as long as the worker's lease: without renewals the sweeper would take the run away.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert runs_sweep() == 0
            time.sleep(0.2)
    finally:
        release.touch()

    run = at_rest(client, run_id)
    assert run["status"] == "succeeded", run
    assert lines(path) == ["started slow", "slow"]
    assert "agent.tool.retried" not in actions(run)


@on_worker
def test_a_killed_worker_s_idempotent_call_is_retried_with_the_same_key(
    agent: AgentFactory, operator: User, api_as: Client, tmp_path: Path, settings: Any, killable_worker: Worker
) -> None:
    settings.AGENTS_LEASE_SECONDS = 2
    script: list[dict[str, Any]] = [
        {"call": "test.append_idem", "arguments": {"path": "input.path", "text": "'once'", "release": "input.release"}},
        {"answer": "Wrote {{ last.text }} (new: {{ last.new }})."},
    ]
    agent("steady", spec(script, [{"tool": "test.append_idem"}]))
    path, release = tmp_path / "out.txt", tmp_path / "release"
    client = api_as(operator)
    try:
        # The tool writes, then waits: the worker dies after the effect, before the outcome is recorded.
        run_id = killed_mid_call(killable_worker, client, "steady", {"path": str(path), "release": str(release)}, path)
    finally:
        release.touch()

    run = at_rest(client, run_id)
    assert run["status"] == "succeeded", run
    step = Step.objects.get(run_id=run_id, kind=StepKind.TOOL_CALL)
    assert step.idempotency_key == f"{run_id}:2"
    assert lines(f"{path}.calls") == [step.idempotency_key, step.idempotency_key]
    assert lines(path) == [f"{step.idempotency_key}\tonce"]
    assert run["result"] == {"answer": "Wrote once (new: false)."}
    trail = actions(run)
    assert trail.count("agent.tool.executing") == trail.count("agent.tool.retried") == 1


# --- compensation -------------------------------------------------------------------------------------------------


def put_script(*calls: tuple[str, str]) -> list[dict[str, Any]]:
    script: list[dict[str, Any]] = [
        {"call": tool, "arguments": {"path": "input.path", "text": f"'{text}'"}} for tool, text in calls
    ]
    return [*script, {"answer": "Done."}]


def compensated(client: APIClient, run_id: str) -> dict[str, Any]:
    response = client.post(f"/api/runs/{run_id}/compensate/", {"reason": "undo it"}, format="json")
    assert response.status_code == 202, response.json()
    wait_for(
        lambda: AuditEvent.objects.filter(action="agent.run.compensated", target_id=run_id).exists(),
        message="the compensation to end",
    )
    return detail(client, run_id)


@on_worker
def test_compensation_undoes_the_writes_newest_first(
    agent: AgentFactory, operator: User, api_as: Client, tmp_path: Path
) -> None:
    agent("writer", spec(put_script(("test.put", "a"), ("test.put", "b")), [{"tool": "test.put"}]))
    client, path = api_as(operator), tmp_path / "out.txt"
    done = at_rest(client, start(client, "writer", {"path": str(path)})["id"])
    assert done["status"] == "succeeded", done

    run = compensated(client, done["id"])

    assert run["status"] == "rolled_back", run
    assert lines(path) == ["put a", "put b", "unput b", "unput a"]
    originals = [step for step in tool_steps(run) if step["compensates"] is None]
    undos = [step for step in tool_steps(run) if step["compensates"] is not None]
    assert [(step["seq"], step["status"]) for step in originals] == [(2, "compensated"), (4, "compensated")]
    assert [(step["tool"], step["compensates"], step["status"]) for step in undos] == [
        ("test.unput", 4, "succeeded"),
        ("test.unput", 2, "succeeded"),
    ]
    assert undos[0]["arguments"] == {"path": str(path), "text": "b"}
    assert actions(run).count("agent.tool.compensated") == 2
    again = client.post(f"/api/runs/{done['id']}/compensate/", {"reason": "twice"}, format="json")
    assert again.status_code == 409, again.json()


@on_worker
def test_a_write_without_compensation_is_sent_to_a_person(
    agent: AgentFactory, operator: User, api_as: Client, tmp_path: Path
) -> None:
    script = put_script(("test.put", "a"), ("test.append", "x"))
    agent("writer", spec(script, [{"tool": "test.put"}, {"tool": "test.append"}]))
    client, path = api_as(operator), tmp_path / "out.txt"
    done = at_rest(client, start(client, "writer", {"path": str(path)})["id"])
    assert done["status"] == "succeeded", done

    run = compensated(client, done["id"])

    assert run["status"] == "succeeded", run
    assert lines(path) == ["put a", "x", "unput a"]
    by_seq = {step["seq"]: step for step in run["steps"]}
    assert (by_seq[2]["status"], by_seq[4]["status"]) == ("compensated", "succeeded")
    item = ReviewItem.objects.get(payload__question="manual_undo")
    assert item.status == ReviewStatus.PENDING
    assert "test.append has no compensation: it is not reversible" in item.reason
    assert item.payload["step"] == 4
    trail = actions(run)
    assert trail.count("agent.tool.not_reversible") == trail.count("agent.tool.compensated") == 1


@on_worker
def test_compensating_needs_an_operator_and_a_reason(
    agent: AgentFactory, operator: User, approver: User, api_as: Client, tmp_path: Path
) -> None:
    agent("writer", spec(put_script(("test.put", "a")), [{"tool": "test.put"}]))
    client = api_as(operator)
    done = at_rest(client, start(client, "writer", {"path": str(tmp_path / "out.txt")})["id"])

    missing = client.post(f"/api/runs/{done['id']}/compensate/", {}, format="json")
    assert missing.status_code == 400, missing.json()
    assert "reason" in missing.json()["error"]["fields"]
    blank = client.post(f"/api/runs/{done['id']}/compensate/", {"reason": " "}, format="json")
    assert blank.status_code == 400, blank.json()
    not_allowed = api_as(approver).post(f"/api/runs/{done['id']}/compensate/", {"reason": "undo"}, format="json")
    assert not_allowed.status_code == 403, not_allowed.json()

    time.sleep(0.3)  # had any of these been accepted, the worker would be undoing the run
    assert lines(tmp_path / "out.txt") == ["put a"]
    assert detail(client, done["id"])["status"] == "succeeded"
    assert "agent.run.compensation_requested" not in actions(done)


# --- the idempotency key and bad input ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_same_idempotency_key_returns_the_same_run(
    agent: AgentFactory, operator: User, api_as: Client, tmp_path: Path
) -> None:
    agent("quick", spec(APPEND, [{"tool": "test.append"}]))
    client = api_as(operator)
    body = {"input": line_input(tmp_path / "out.txt", "one"), "idempotency_key": "order-42"}

    first = client.post("/api/agents/quick/runs/", body, format="json")
    again = client.post("/api/agents/quick/runs/", body, format="json")
    other = client.post(
        "/api/agents/quick/runs/", {**body, "input": line_input(tmp_path / "out.txt", "two")}, format="json"
    )

    assert (first.status_code, again.status_code) == (202, 200), (first.json(), again.json())
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["idempotency_key"] == "order-42"
    assert other.status_code == 409, other.json()
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert "idempotency_key" in other.json()["error"]["fields"]
    assert Run.objects.count() == 1
    assert AuditEvent.objects.filter(action="agent.run.started").count() == 1


@pytest.mark.django_db
def test_bad_requests_get_a_clear_4xx_and_start_nothing(
    agent: AgentFactory, operator: User, viewer: User, api_as: Client
) -> None:
    agent("quick", spec(APPEND, [{"tool": "test.append"}]))
    client = api_as(operator)

    not_an_object = client.post("/api/agents/quick/runs/", {"input": [1, 2]}, format="json")
    assert not_an_object.status_code == 400, not_an_object.json()
    assert "input" in not_an_object.json()["error"]["fields"]
    missing = client.post("/api/agents/quick/runs/", {}, format="json")
    assert missing.status_code == 400, missing.json()
    assert "input" in missing.json()["error"]["fields"]
    unknown = client.post("/api/agents/nobody/runs/", {"input": {}}, format="json")
    assert unknown.status_code == 404, unknown.json()
    unset = client.post("/api/agents/quick/runs/", {"input": {}, "label": "staging"}, format="json")
    assert unset.status_code == 409, unset.json()
    assert unset.json()["error"]["code"] == "label_unset"
    no_label = client.post("/api/agents/quick/runs/", {"input": {}, "label": "nowhere"}, format="json")
    assert no_label.status_code == 400, no_label.json()
    assert "label" in no_label.json()["error"]["fields"]
    forbidden = api_as(viewer).post("/api/agents/quick/runs/", {"input": {}}, format="json")
    assert forbidden.status_code == 403, forbidden.json()
    assert client.get("/api/runs/not-a-uuid/").status_code == 404
    assert client.get(f"/api/runs/{uuid.uuid4()}/").status_code == 404

    assert not Run.objects.exists()
    assert not AuditEvent.objects.filter(action="agent.run.started").exists()


@on_worker
def test_bad_decisions_get_a_clear_4xx_and_decide_nothing(
    agent: AgentFactory, operator: User, approver: User, viewer: User, api_as: Client, tmp_path: Path
) -> None:
    grant = {"tool": "test.append", "approval": "always", "constraints": ["args.quantity <= 10"]}
    agent("careful", spec(APPEND, [grant]))
    client, deciders = api_as(operator), api_as(approver)
    parked = at_rest(client, start(client, "careful", line_input(tmp_path / "out.txt", "x"))["id"])
    approval = approval_of(deciders, parked)
    url = f"/api/approvals/{approval['id']}/decide/"

    malformed = deciders.post(url, {"decision": "approve", "digest": "abc"}, format="json")
    assert malformed.status_code == 400, malformed.json()
    assert "digest" in malformed.json()["error"]["fields"]
    stale = deciders.post(url, {"decision": "approve", "digest": "0" * 64}, format="json")
    assert stale.status_code == 409, stale.json()
    assert stale.json()["error"]["code"] == "stale_digest"
    stale_edit = deciders.post(
        url, {"decision": "edit", "digest": "0" * 64, "arguments": line_input(tmp_path / "out.txt", "y")}, format="json"
    )
    assert stale_edit.status_code == 409, stale_edit.json()
    unknown = decide(deciders, approval, "maybe")
    assert unknown.status_code == 400, unknown.json()
    assert "decision" in unknown.json()["error"]["fields"]
    bad_arguments = decide(deciders, approval, "edit", arguments={"path": 42})
    assert bad_arguments.status_code == 400, bad_arguments.json()
    assert "arguments" in bad_arguments.json()["error"]["fields"]
    too_many = decide(deciders, approval, "edit", arguments=line_input(tmp_path / "out.txt", "x", 11))
    assert too_many.status_code == 400, too_many.json()
    assert "args.quantity <= 10" in str(too_many.json()["error"]["fields"]["arguments"])
    edit_without_arguments = decide(deciders, approval, "edit")
    assert edit_without_arguments.status_code == 400, edit_without_arguments.json()
    approve_with_arguments = decide(deciders, approval, "approve", arguments=line_input(tmp_path / "out.txt", "y"))
    assert approve_with_arguments.status_code == 400, approve_with_arguments.json()
    viewer_decides = decide(api_as(viewer), approval, "approve")
    assert viewer_decides.status_code == 403, viewer_decides.json()
    assert deciders.get("/api/approvals/999999/").status_code == 404

    item = ReviewItem.objects.get(pk=approval["id"])
    assert (item.status, item.digest) == (ReviewStatus.PENDING, approval["digest"])
    assert not item.decisions.exists()
    assert detail(client, parked["id"])["status"] == "awaiting_approval"
    assert lines(tmp_path / "out.txt") == []
