"""A run's approvals: a tool call approved, rejected or approved with edited arguments, a budget overrun granted
or refused, each settled on the run when decided or expired (the governance signals), and the run resumed."""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from agents import runtime, tools
from agents.models import Run, RunStatus, Step, StepKind, StepStatus
from agents.services.common import STEP_SUBJECT, enqueue_run
from agents.services.compensation import undone_by_hand
from audit.context import Actor, audit_context
from audit.services import audit_record
from config.errors import Conflict, DomainError, NotFound
from governance import selectors
from governance.models import (
    ReviewItem,
    ReviewKind,
    ReviewStatus,
)
from governance.services import audit_actor, review_decide
from governance.signals import review_item_decided, review_item_expired

RUN_APPROVALS = (ReviewKind.TOOL_APPROVAL, ReviewKind.BUDGET_OVERRUN)  # what a run waits for a person about


def approval_step(item: ReviewItem) -> Step:
    """The step a run's approval is about: a tool call, or the ``approval`` step of a budget overrun."""
    if item.kind not in RUN_APPROVALS or item.subject_type != STEP_SUBJECT:
        raise NotFound("That review item is not a run's approval.")
    return Step.objects.select_related("run", "run__agent", "run__version", "tool").get(pk=item.subject_id)


@transaction.atomic
def approval_decide(
    *,
    actor: User,
    item: ReviewItem,
    decision: str,
    digest: str,
    comment: str = "",
    arguments: dict[str, Any] | None = None,
) -> ReviewItem:
    """Approve, reject, or approve a tool call with edited arguments (``edit``). Bound to the digest of what was
    shown; an edit re-binds the item to the new arguments, so approvals given to the old ones no longer count."""
    item = ReviewItem.objects.select_for_update().get(pk=item.pk)
    step = approval_step(item)
    if decision not in ("approve", "reject", "edit"):
        raise DomainError("Unknown decision.", fields={"decision": ["Choose approve, reject or edit."]})
    if decision != "edit":
        if arguments is not None:
            raise DomainError("Arguments go with an edit.", fields={"arguments": ["Only with decision edit."]})
        return review_decide(actor=actor, item=item, decision=decision, digest=digest, comment=comment)
    if arguments is None:
        raise DomainError("An edit needs the new arguments.", fields={"arguments": ["This field is required."]})
    _check_edit(item, step, digest, arguments)
    if item.status == ReviewStatus.PENDING and item.requested_by_id != actor.pk:
        before = item.payload.get("arguments")
        item.payload = {**item.payload, "arguments": arguments}
        item.digest = selectors.review_digest(item)
        item.save(update_fields=["payload", "digest"])
        details = {"before": before, "after": arguments, "digest": item.digest}
        audit_record(
            actor=audit_actor(actor),
            action="agent.approval.edited",
            target=step,
            correlation_id=step.run.correlation_id,
            details=details,
        )
    comment = comment or "approved with edited arguments"
    return review_decide(actor=actor, item=item, decision="approve", digest=item.digest, comment=comment)


def _check_edit(item: ReviewItem, step: Step, digest: str, arguments: dict[str, Any]) -> None:
    """Edited arguments must be for a proposed call still as reviewed, fit the pinned tool's schema and keep to
    the grant's constraints (the check the runtime makes, ``runtime.constraint_problem``)."""
    if step.tool is None or item.payload.get("question") != "approval":
        raise Conflict("Only a proposed tool call can be approved with other arguments.", code="not_editable")
    if digest != selectors.review_digest(item):
        fields = {"digest": ["Does not match the item's current digest."]}
        stale = "What you reviewed is not what is pending: reload it and decide again."
        raise Conflict(stale, code="stale_digest", fields=fields)
    ctx = runtime.context_of(step.run)
    pinned = ctx.tools.get(step.tool.name)
    if pinned is None:
        raise Conflict(f"The agent version pins no version of {step.tool.name}.", code="not_editable")
    try:
        tools.validate_arguments(pinned.parameters, arguments)
    except tools.ToolFailure as failure:
        raise DomainError("The edited arguments are not valid.", fields={"arguments": [str(failure)]}) from None
    grant = ctx.grants.get(step.tool.name, {})
    problem = runtime.constraint_problem(grant, runtime.call_facts(step.run, pinned, arguments))
    if problem:
        fields = {"arguments": [problem[0].upper() + problem[1:] + "."]}
        raise DomainError("The edited arguments break the grant's constraints.", fields=fields)


def _settle(item: ReviewItem, approved: bool, why: str) -> None:
    """Apply a final decision (or expiry) to the step it concerns and resume the run."""
    step = approval_step(item)
    run = Run.objects.select_for_update().get(pk=step.run_id)
    step = Step.objects.select_for_update(of=("self",)).select_related("tool", "compensates").get(pk=step.pk)
    question = item.payload.get("question", "approval")
    if question == "manual_undo":
        undone_by_hand(item, step, run, approved, why)
        return
    if step.status != StepStatus.AWAITING_APPROVAL:
        return
    if approved:
        step.status = StepStatus.EXECUTING if question == "interrupted" else StepStatus.PROPOSED
        step.arguments = item.payload.get("arguments", step.arguments)
        # An interrupted call approved for a retry is called once more; a later interruption asks again.
        step.detail = {**step.detail, "approved": True, "approval": why, "retry_approved": question == "interrupted"}
        step.save(update_fields=["status", "arguments", "detail"])
    else:
        step.status, step.finished_at = StepStatus.DENIED, timezone.now()
        step.error = why if question == "approval" else f"not called again: {why}"
        step.save(update_fields=["status", "error", "finished_at"])
    audit_record(
        actor=Actor.system("approvals"),
        action=f"agent.approval.{'approved' if approved else 'denied'}",
        target=step,
        correlation_id=run.correlation_id,
        details={"why": why, "review": item.pk},
    )
    _resume(run)


def _resume(run: Run) -> None:
    """A run awaiting approval with nothing left to decide goes back to the queue (the time it waited does not count
    against its wall-time budget)."""
    if run.status == RunStatus.AWAITING_APPROVAL and not run.steps.filter(status=StepStatus.AWAITING_APPROVAL).exists():
        now = timezone.now()
        if run.parked_at is not None:
            run.waited_seconds += (now - run.parked_at).total_seconds()
        run.parked_at = None
        run.save(update_fields=["parked_at", "waited_seconds", *runtime.change(run, RunStatus.QUEUED)])
        enqueue_run(run)


def _settle_overrun(item: ReviewItem, approved: bool, why: str) -> None:
    """Apply a decision on a budget overrun (or its expiry): approved, the run gets that budget once more and goes
    on; refused, it fails (ends ``timed_out`` for wall time) and the tool call it was about to make is not made."""
    found = Step.objects.filter(pk=item.subject_id, kind=StepKind.APPROVAL).values_list("run_id", flat=True).first()
    if found is None:
        return
    run = Run.objects.select_for_update(of=("self",)).select_related("agent").get(pk=found)
    step = Step.objects.select_for_update().get(pk=item.subject_id)
    if step.status != StepStatus.AWAITING_APPROVAL:
        return
    budget, extension, now = step.detail["budget"], step.detail["extension"], timezone.now()
    step.finished_at = now
    if approved:
        step.status, step.detail = StepStatus.SUCCEEDED, {**step.detail, "approval": why}
        step.save(update_fields=["status", "detail", "finished_at"])
        granted = Decimal(str(run.budget_extensions.get(budget, 0))) + Decimal(str(extension))
        run.budget_extensions = {**run.budget_extensions, budget: float(granted) if budget == "cost" else int(granted)}
        run.save(update_fields=["budget_extensions"])
        audit_record(
            actor=Actor.system("approvals"),
            action="agent.budget.extended",
            target=step,
            correlation_id=run.correlation_id,
            details={"budget": budget, "extension": extension, "why": why, "review": item.pk},
        )
        _resume(run)
        return
    step.status, step.error = StepStatus.DENIED, why
    step.save(update_fields=["status", "error", "finished_at"])
    for proposed in run.steps.filter(kind=StepKind.TOOL_CALL, status=StepStatus.PROPOSED):
        proposed.status, proposed.finished_at = StepStatus.DENIED, now
        proposed.error = f"not called: more {budget} budget was refused"
        proposed.save(update_fields=["status", "error", "finished_at"])
    audit_record(
        actor=Actor.system("approvals"),
        action="agent.budget.refused",
        target=step,
        correlation_id=run.correlation_id,
        details={"budget": budget, "why": why, "review": item.pk},
    )
    with audit_context(actor=Actor.system("approvals"), correlation_id=run.correlation_id):
        status = RunStatus.TIMED_OUT if budget == "wall_seconds" else RunStatus.FAILED
        runtime.end_now(run, status, runtime.run_actor(run), error=f"Budget: {step.detail['reason']}; {why}.")


_SETTLE: dict[str, Callable[[ReviewItem, bool, str], None]] = {
    ReviewKind.TOOL_APPROVAL: _settle,
    ReviewKind.BUDGET_OVERRUN: _settle_overrun,
}


@receiver(review_item_decided, dispatch_uid="agents.approval_decided")
def _approval_decided(sender: Any, item: ReviewItem, **kwargs: Any) -> None:
    if item.kind not in _SETTLE or item.subject_type != STEP_SUBJECT:
        return
    approved = item.status == ReviewStatus.APPROVED
    # Everyone whose decision made the outcome: both approvers of a critical call, or the one who rejected.
    outcome = "approve" if approved else "reject"
    deciding = [
        d
        for d in item.decisions.order_by("created_at", "id")
        if d.decision == outcome and (not approved or d.digest == item.digest)
    ]
    who = " and ".join(f"{d.decider_label} ({d.decider_roles})" for d in deciding) or "a person"
    comments = "; ".join(d.comment for d in deciding if d.comment)
    _SETTLE[item.kind](
        item, approved, f"{'approved' if approved else 'rejected'} by {who}" + (f": {comments}" if comments else "")
    )


@receiver(review_item_expired, dispatch_uid="agents.approval_expired")
def _approval_expired(sender: Any, item: ReviewItem, **kwargs: Any) -> None:
    if item.kind in _SETTLE and item.subject_type == STEP_SUBJECT:
        _SETTLE[item.kind](item, False, "the approval expired before anyone decided: expiry denies")
