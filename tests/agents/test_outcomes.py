"""A run's outcome, apart from its status.

First the rules alone (``agents.outcomes``, pure functions over step facts), then the demo agents run as a new
user would try them (``demo/agents.py``, advanced in-process as a worker would): writes all denied, an unknown
SKU, invalid arguments; each run succeeds, none completes, and ``/api/metrics/`` and ``/api/runs/`` say so.
"""

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

import demo.agents
from agents import runtime, services
from agents.models import Run, RunOutcome, RunStatus, StepKind, StepStatus
from agents.outcomes import REASON_LENGTH, Outcome, StepFacts, decide, report_of, result_error
from audit.models import AuditEvent
from governance import services as governance_services
from governance.models import ReviewItem, ReviewKind, ReviewStatus
from governance.roles import Role
from tests.agents.unit_tools import release_agent, spec, start_run
from tests.support import tools_release

COMPLETED, NOT_COMPLETED, ESCALATED = RunOutcome.COMPLETED, RunOutcome.NOT_COMPLETED, RunOutcome.ESCALATED


def call(tool: str, status: str = StepStatus.SUCCEEDED, *, write: bool = False, **facts: object) -> StepFacts:
    return StepFacts(kind=StepKind.TOOL_CALL, status=status, tool=tool, write=write, **facts)  # type: ignore[arg-type]


CHECK = call("inventory.check_stock", result={"sku": "SKU-123", "on_hand": 4, "reorder_point": 20})
PLACED = call("inventory.place_replenishment", write=True, result={"order_id": 1})
CONSTRAINT = "the arguments break the constraint 'args.quantity <= 10000'"
DENIED_WRITE = call("inventory.place_replenishment", StepStatus.DENIED, write=True, error=CONSTRAINT)
UNKNOWN_SKU = call("inventory.check_stock", StepStatus.FAILED, error="LookupError: unknown SKU 'SKU-999'")


def succeeded(*steps: StepFacts, answer: str | None = "An answer.") -> Outcome:
    return decide(status=RunStatus.SUCCEEDED, steps=steps, answer=answer)


# --- the record ----------------------------------------------------------------------------------------------------


def test_a_succeeded_write_completes_the_run() -> None:
    assert succeeded(CHECK, PLACED) == Outcome(COMPLETED, "wrote with inventory.place_replenishment")


def test_a_read_only_task_completes_with_a_good_result_and_an_answer() -> None:
    assert succeeded(CHECK) == Outcome(COMPLETED, "read with inventory.check_stock and answered")
    assert succeeded(CHECK, answer="  ") == Outcome(NOT_COMPLETED, "the run read but gave no answer")


def test_writes_all_denied_do_not_complete_the_run() -> None:
    outcome = succeeded(CHECK, DENIED_WRITE)
    assert outcome == Outcome(
        NOT_COMPLETED, f"every write went wrong: inventory.place_replenishment was denied ({CONSTRAINT})"
    )


def test_writes_rejected_or_failed_do_not_complete_the_run() -> None:
    rejected = call("treasury.execute_hedge", StepStatus.DENIED, write=True, error="rejected by approver (Approver)")
    failed = call("notify.send_alert", StepStatus.FAILED, write=True, error="timed out after 10 s")
    outcome = succeeded(rejected, failed)
    assert outcome.outcome == NOT_COMPLETED
    assert outcome.reason == (
        "every write went wrong: treasury.execute_hedge was denied (rejected by approver (Approver)); "
        "notify.send_alert failed (timed out after 10 s)"
    )


def test_tool_calls_that_all_failed_do_not_complete_the_run() -> None:
    invalid = call("orders.lookup", StepStatus.DENIED, error="invalid arguments: order_id: 42 is not of type 'string'")
    assert succeeded(UNKNOWN_SKU) == Outcome(
        NOT_COMPLETED, "every tool call went wrong: inventory.check_stock failed (LookupError: unknown SKU 'SKU-999')"
    )
    assert succeeded(invalid).reason.startswith("every tool call went wrong: orders.lookup was denied (invalid")


def test_a_result_with_an_error_is_an_error() -> None:
    not_found = call("orders.lookup", result={"error": "not found", "order_id": "SO-1"})
    assert succeeded(not_found) == Outcome(
        NOT_COMPLETED, "every tool call went wrong: orders.lookup returned an error (not found)"
    )
    assert result_error({"error": {"code": 404}}) == '{"code": 404}'
    assert result_error({"error": ""}) == result_error({"errors": "x"}) == result_error(["error"]) == ""


def test_a_run_that_did_nothing_is_not_completed() -> None:
    assert succeeded() == Outcome(NOT_COMPLETED, "the run called no tool: nothing was done")


def test_a_failure_tried_again_successfully_is_resolved_and_one_left_is_not() -> None:
    bad_json = call("inventory.check_stock", StepStatus.DENIED, error="the arguments were not a JSON object: {sku")
    assert succeeded(bad_json, CHECK).outcome == COMPLETED
    alert = call("notify.send_alert", StepStatus.DENIED, write=True, error="the rate limit is used up")
    assert succeeded(CHECK, PLACED, alert) == Outcome(
        NOT_COMPLETED, "left unresolved: notify.send_alert was denied (the rate limit is used up)"
    )


def test_undo_steps_are_not_what_the_run_did() -> None:
    undo = call("inventory.cancel_replenishment", write=True, result={"status": "cancelled"}, compensates=True)
    assert succeeded(CHECK, DENIED_WRITE, undo).outcome == NOT_COMPLETED


# --- how the run ended ----------------------------------------------------------------------------------------------


def test_a_run_that_did_not_succeed_is_not_completed_with_its_error() -> None:
    for status in (RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT):
        outcome = decide(status=status, steps=[CHECK, PLACED], error="Budget: the step budget (4) would be exceeded.")
        assert outcome.outcome == NOT_COMPLETED
    assert decide(status=RunStatus.TIMED_OUT, steps=[], error="The wall-time budget ran out.").reason == (
        "the run ended timed out: The wall-time budget ran out."
    )
    assert decide(status=RunStatus.ROLLED_BACK, steps=[CHECK, PLACED]) == Outcome(
        NOT_COMPLETED, "every write it made was undone (rolled back)"
    )


def test_a_budget_overrun_not_granted_escalates() -> None:
    overrun = StepFacts(
        kind=StepKind.APPROVAL,
        status=StepStatus.DENIED,
        detail={"budget": "steps"},
        error="rejected by approver (Approver): enough",
    )
    outcome = decide(status=RunStatus.FAILED, steps=[CHECK, overrun], error="Budget: ...")
    assert outcome == Outcome(
        ESCALATED,
        "the steps budget overrun went to a person and was not granted: rejected by approver (Approver): enough",
    )
    granted = StepFacts(kind=StepKind.APPROVAL, status=StepStatus.SUCCEEDED, detail={"budget": "steps"})
    assert succeeded(granted, CHECK, PLACED).outcome == COMPLETED


def test_an_approval_that_expired_escalates_and_a_rejection_does_not() -> None:
    expired = call(
        "treasury.execute_hedge",
        StepStatus.DENIED,
        write=True,
        review_status=ReviewStatus.EXPIRED,
        error="the approval expired before anyone decided: expiry denies",
    )
    assert succeeded(expired) == Outcome(
        ESCALATED, "the approval of treasury.execute_hedge expired before anyone decided"
    )
    rejected = call("treasury.execute_hedge", StepStatus.DENIED, write=True, review_status=ReviewStatus.REJECTED)
    assert succeeded(rejected).outcome == NOT_COMPLETED


def test_a_guardrail_that_escalates_escalates() -> None:
    guardrail = StepFacts(
        kind=StepKind.GUARDRAIL,
        status=StepStatus.DENIED,
        error="asks for a person",
        detail={"checkpoint": "input", "effect": "escalate"},
    )
    outcome = decide(status=RunStatus.FAILED, steps=[guardrail], error="The input guardrails decided escalate")
    assert outcome == Outcome(ESCALATED, "the input guardrails escalated: asks for a person")
    denied = StepFacts(kind=StepKind.GUARDRAIL, status=StepStatus.DENIED, detail={"effect": "deny"})
    assert decide(status=RunStatus.FAILED, steps=[denied], error="x").outcome == NOT_COMPLETED


def test_a_long_reason_is_cut_to_the_column() -> None:
    many = [call(f"tool.{n}", StepStatus.FAILED, error="x" * 50) for n in range(20)]
    reason = succeeded(*many).reason
    assert len(reason) == REASON_LENGTH
    assert reason.endswith("…")


# --- the agent's report ----------------------------------------------------------------------------------------------


def test_the_report_is_a_json_object_with_a_known_outcome() -> None:
    assert report_of('{"outcome": "escalated", "reason": " needs a buyer "}') is not None
    assert report_of('{"outcome": "escalated", "reason": " needs a buyer "}').reason == "needs a buyer"  # type: ignore[union-attr]
    for answer in (None, "", "Done.", '{"outcome": "great"}', '["outcome"]', "{not json", '{"result": "completed"}'):
        assert report_of(answer) is None


def test_the_report_may_say_less_was_done() -> None:
    assert succeeded(CHECK, PLACED, answer='{"outcome": "escalated", "reason": "the supplier wants a call"}') == (
        Outcome(ESCALATED, "the agent reported it needs a person: the supplier wants a call")
    )
    assert succeeded(CHECK, answer='{"outcome": "not_completed", "reason": "the SKU is discontinued"}') == Outcome(
        NOT_COMPLETED, "the agent reported it did not complete the task: the SKU is discontinued"
    )
    assert succeeded(CHECK, PLACED, answer='{"outcome": "completed"}').outcome == COMPLETED


def test_the_report_never_upgrades_a_run_that_did_nothing() -> None:
    outcome = succeeded(UNKNOWN_SKU, answer='{"outcome": "completed", "reason": "all good"}')
    assert outcome.outcome == NOT_COMPLETED
    assert outcome.reason.endswith("(the agent reported it completed: the record wins)")
    assert succeeded(answer='{"outcome": "completed"}').outcome == NOT_COMPLETED


# --- the demo agents, tried as a new user would ----------------------------------------------------------------------

OWNER = "test-outcomes"
Capture = Callable[..., Any]


@pytest.fixture
def demo_agents(transactional_db: None, editor: User, approver: User) -> None:
    """The demo's agents and tables, as ``make run`` loads them (committed: the tools read them on their own
    connections)."""
    tools_release(approver)
    demo.agents.load(editor=editor, approvers=[approver])


@pytest.fixture
def try_run(demo_agents: None, operator: User, django_capture_on_commit_callbacks: Capture) -> Callable[..., Run]:
    """Start a run of a demo agent as the operator and advance it as a worker would, until it finishes or parks."""

    def run(slug: str, run_input: dict[str, Any]) -> Run:
        started = start_run(django_capture_on_commit_callbacks, operator, slug, run_input)
        runtime.advance(started.pk, OWNER)
        return Run.objects.get(pk=started.pk)

    return run


NEW_USER = [  # (agent, input, what the outcome's reason says): each run succeeds, and none does the task
    (
        "inventory-agent",
        {"sku": "SKU-123", "quantity": 20000},
        "every write went wrong: inventory.place_replenishment was denied (the arguments break the constraint "
        "'args.quantity <= 10000')",
    ),
    (
        "inventory-agent",
        {"sku": "SKU-999", "quantity": 20},
        "every tool call went wrong: inventory.check_stock failed (LookupError: unknown SKU 'SKU-999')",
    ),
    (
        "inventory-agent",
        {"sku": "SKU-123", "quantity": "lots"},
        "every write went wrong: inventory.place_replenishment was denied (invalid arguments: quantity: 'lots' is not "
        "of type 'integer')",
    ),
    (
        "order-agent",
        {"order_id": 12345},
        "every tool call went wrong: orders.lookup was denied (invalid arguments: order_id: 12345 is not of type "
        "'string')",
    ),
    (
        "order-agent",
        {"order_id": "SO-99999"},
        "every tool call went wrong: orders.lookup failed (LookupError: there is no order SO-99999)",
    ),
    (
        "risk-monitor",
        {"portfolio": "fx-jpy"},
        "every tool call went wrong: risk.read_signals failed (LookupError: unknown portfolio 'fx-jpy'; known: fx-eur, "
        "fx-gbp)",
    ),
]


def test_the_new_users_runs_succeed_but_do_not_complete(
    try_run: Callable[..., Run], viewer: User, api_as: Callable[[User], APIClient]
) -> None:
    runs = [try_run(slug, run_input) for slug, run_input, _ in NEW_USER]
    for run, (slug, _, reason) in zip(runs, NEW_USER, strict=True):
        assert (run.status, run.outcome, run.outcome_reason) == (RunStatus.SUCCEEDED, NOT_COMPLETED, reason), slug
        [finished] = AuditEvent.objects.filter(correlation_id=run.correlation_id, action="agent.run.succeeded")
        assert (finished.details["outcome"], finished.details["outcome_reason"]) == (NOT_COMPLETED, reason)
    totals = api_as(viewer).get("/api/metrics/").json()["totals"]
    assert (totals["runs_finished"], totals["runs_succeeded"]) == (6, 6)
    assert (totals["runs_completed"], totals["runs_not_completed"], totals["runs_escalated"]) == (0, 6, 0)
    assert (totals["task_completion_rate"], totals["run_escalation_rate"]) == (0.0, 0.0)


def test_completed_runs_and_one_undone(
    try_run: Callable[..., Run], operator: User, viewer: User, api_as: Callable[[User], APIClient]
) -> None:
    ordered = try_run("inventory-agent", {"sku": "SKU-123", "quantity": 50})
    assert (ordered.status, ordered.outcome) == (RunStatus.SUCCEEDED, COMPLETED)
    assert ordered.outcome_reason == "wrote with inventory.place_replenishment"
    enough = try_run("inventory-agent", {"sku": "SKU-456", "quantity": 50})
    assert (enough.outcome, enough.outcome_reason) == (COMPLETED, "read with inventory.check_stock and answered")
    found = try_run("order-agent", {"order_id": "SO-12345"})
    assert (found.outcome, found.outcome_reason) == (COMPLETED, "read with orders.lookup and answered")
    calm = try_run("risk-monitor", {"portfolio": "fx-gbp"})
    assert calm.outcome == COMPLETED
    agents = {row["slug"]: row for row in api_as(viewer).get("/api/metrics/").json()["agents"]}
    assert (agents["inventory-agent"]["runs_completed"], agents["inventory-agent"]["task_completion_rate"]) == (2, 1.0)

    services.run_compensate(actor=operator, run=ordered, reason="The supplier delivered early.")
    services.compensate(ordered.pk, operator.pk)
    ordered.refresh_from_db()
    assert (ordered.status, ordered.outcome) == (RunStatus.ROLLED_BACK, NOT_COMPLETED)
    assert ordered.outcome_reason == "every write it made was undone (rolled back)"
    inventory = api_as(viewer).get("/api/metrics/", {"agent": "inventory-agent"}).json()["totals"]
    assert (inventory["runs_finished"], inventory["runs_completed"], inventory["task_completion_rate"]) == (2, 1, 0.5)


def test_an_approval_nobody_gave_escalates(
    try_run: Callable[..., Run], viewer: User, api_as: Callable[[User], APIClient]
) -> None:
    run = try_run("inventory-agent", {"sku": "SKU-123", "quantity": 500})
    assert (run.status, run.outcome, run.outcome_reason) == (RunStatus.AWAITING_APPROVAL, None, "")
    with transaction.atomic():  # the resume is enqueued after commit: dropped, the test advances the run
        assert governance_services.review_items_expire(now=timezone.now() + dt.timedelta(days=2)) == 1
        connection.run_on_commit.clear()
    runtime.advance(run.pk, OWNER)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.result == {
        "answer": "The replenishment of SKU-123 was not placed: the approval expired before anyone decided: "
        "expiry denies"
    }
    assert (run.outcome, run.outcome_reason) == (
        ESCALATED,
        "the approval of inventory.place_replenishment expired before anyone decided",
    )
    totals = api_as(viewer).get("/api/metrics/").json()["totals"]
    assert (totals["runs_finished"], totals["runs_escalated"], totals["run_escalation_rate"]) == (1, 1, 1.0)
    assert totals["task_completion_rate"] == 0.0


def decide_pending(actor: User, decision: str) -> None:
    """Decide the pending tool approval; the resume it enqueues after commit is dropped (the test advances)."""
    item = ReviewItem.objects.get(kind=ReviewKind.TOOL_APPROVAL, status=ReviewStatus.PENDING)
    with transaction.atomic():
        governance_services.review_decide(actor=actor, item=item, decision=decision, digest=item.digest)
        connection.run_on_commit.clear()


def test_a_hedge_two_people_approve_completes_and_one_they_reject_does_not(
    try_run: Callable[..., Run], approver: User, make_user: Callable[..., User]
) -> None:
    second = make_user("bea-second-approver", Role.APPROVER)
    hedged = try_run("risk-monitor", {"portfolio": "fx-eur"})
    decide_pending(approver, "approve")
    decide_pending(second, "approve")
    runtime.advance(hedged.pk, OWNER)
    hedged.refresh_from_db()
    assert (hedged.status, hedged.outcome, hedged.outcome_reason) == (
        RunStatus.SUCCEEDED,
        COMPLETED,
        "wrote with treasury.execute_hedge",
    )
    refused = try_run("risk-monitor", {"portfolio": "fx-eur"})
    decide_pending(approver, "reject")
    runtime.advance(refused.pk, OWNER)
    refused.refresh_from_db()
    assert (refused.status, refused.outcome) == (RunStatus.SUCCEEDED, NOT_COMPLETED)
    assert refused.outcome_reason == (
        "every write went wrong: treasury.execute_hedge was denied (rejected by april-approver (Approver))"
    )


def test_a_budget_overrun_refused_escalates_and_a_cancelled_run_is_not_completed(
    demo_agents: None, editor: User, approver: User, operator: User, django_capture_on_commit_callbacks: Capture
) -> None:
    script: list[dict[str, Any]] = [{"call": "unit.note", "arguments": {"message": "'restock'"}}, {"answer": "noted"}]
    release_agent(
        editor, approver, "frugal", spec(script, budgets={"steps": 1}, escalation={"budget_overrun": "review"})
    )
    frugal = start_run(django_capture_on_commit_callbacks, operator, "frugal", {})
    runtime.advance(frugal.pk, OWNER)
    item = ReviewItem.objects.get(kind=ReviewKind.BUDGET_OVERRUN, status=ReviewStatus.PENDING)
    with transaction.atomic():
        governance_services.review_decide(actor=approver, item=item, decision="reject", digest=item.digest)
    frugal.refresh_from_db()
    assert (frugal.status, frugal.outcome) == (RunStatus.FAILED, ESCALATED)
    assert frugal.outcome_reason == (
        "the steps budget overrun went to a person and was not granted: rejected by april-approver (Approver)"
    )

    waiting = start_run(
        django_capture_on_commit_callbacks, operator, "inventory-agent", {"sku": "SKU-123", "quantity": 500}
    )
    runtime.advance(waiting.pk, OWNER)
    services.run_cancel(actor=operator, run=waiting, reason="Wrong SKU.")
    waiting.refresh_from_db()
    assert (waiting.status, waiting.outcome) == (RunStatus.CANCELLED, NOT_COMPLETED)
    assert waiting.outcome_reason == f"the run ended cancelled: Cancelled by {operator.username}: Wrong SKU."


def test_the_api_shows_and_filters_outcomes(
    try_run: Callable[..., Run], operator: User, api_as: Callable[[User], APIClient]
) -> None:
    done = try_run("inventory-agent", {"sku": "SKU-123", "quantity": 50})
    unknown = try_run("inventory-agent", {"sku": "SKU-999", "quantity": 20})
    waiting = try_run("inventory-agent", {"sku": "SKU-123", "quantity": 500})
    client = api_as(operator)
    listed = {row["id"]: row for row in client.get("/api/runs/").json()["results"]}
    assert (listed[str(done.pk)]["outcome"], listed[str(done.pk)]["outcome_reason"]) == (COMPLETED, done.outcome_reason)
    assert (listed[str(waiting.pk)]["outcome"], listed[str(waiting.pk)]["outcome_reason"]) == (None, "")
    not_done = client.get("/api/runs/", {"outcome": "not_completed"}).json()["results"]
    assert [row["id"] for row in not_done] == [str(unknown.pk)]
    detail = client.get(f"/api/runs/{unknown.pk}/").json()
    assert (detail["status"], detail["outcome"]) == ("succeeded", "not_completed")
    assert detail["outcome_reason"].startswith("every tool call went wrong: inventory.check_stock failed")
    bad = client.get("/api/runs/", {"outcome": "done"})
    assert (bad.status_code, list(bad.json()["error"]["fields"])) == (400, ["outcome"])
