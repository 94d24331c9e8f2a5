"""Compensation: a finished run's writes undone newest first through each tool's compensation, by a Celery task;
what cannot be undone automatically goes to a person."""

import datetime as dt
import json
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from agents import runtime, tool_versions, tools
from agents.models import Run, RunStatus, Step, StepKind, StepStatus, Tool
from agents.services.common import require
from audit.context import Actor, audit_context
from audit.services import audit_record
from config import enqueue
from config.errors import BrokerUnavailable, Conflict, DomainError
from governance.models import (
    ReviewItem,
    ReviewKind,
    ReviewStatus,
    Risk,
)
from governance.policies import ConditionError, ConditionRuntimeError, compile_condition
from governance.services import audit_actor, review_item_open


@transaction.atomic
def run_compensate(*, actor: User, run: Run, reason: str) -> Run:
    """Ask for a finished run's side effects to be undone (newest first, by a Celery task)."""
    require(actor, "agents.compensate_run", "compensate runs")
    if not reason.strip():
        raise DomainError("Say why the run is undone.", fields={"reason": ["This field is required."]})
    run = Run.objects.select_for_update(of=("self",)).select_related("agent").get(pk=run.pk)
    if run.status not in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT):
        raise Conflict(f"A {run.get_status_display()} run cannot be compensated: cancel it or wait for it to end.")
    if not _write_steps(run):
        raise Conflict("This run changed nothing: there is nothing to undo.", code="nothing_to_undo")
    audit_record(
        actor=audit_actor(actor),
        action="agent.run.compensation_requested",
        target=run,
        correlation_id=run.correlation_id,
        details={"reason": reason},
    )
    transaction.on_commit(lambda: _compensation_enqueue(run, actor))
    return run


def _compensation_enqueue(run: Run, actor: User) -> None:
    """Send the compensation to a worker. No sweeper would find a request the broker never got, so a broker that is
    down refuses it (503): nothing is undone, the trail says so, and asking again once the broker is back works."""
    try:
        enqueue.send("agents.tasks.run_compensate_task", str(run.pk), actor.pk)
    except BrokerUnavailable as error:
        with transaction.atomic():
            audit_record(
                actor=audit_actor(actor),
                action="agent.run.compensation_not_queued",
                target=run,
                correlation_id=run.correlation_id,
                details={"error": error.message},
            )
        raise BrokerUnavailable(
            "Nothing was undone: the task queue cannot be reached. Ask again in a moment."
        ) from error


def _write_steps(run: Run) -> list[Step]:
    """The run's writes still in effect (by the tool versions its agent version pins), newest first; those a person
    is asked to undo by hand are left out."""
    by_hand = Step.objects.filter(run=run, compensates__isnull=False, review__status=ReviewStatus.PENDING)
    writes = {name for name, pinned in tool_versions.pinned(run.version_id).items() if pinned.side_effect == "write"}
    return list(
        run.steps.filter(
            kind=StepKind.TOOL_CALL, status=StepStatus.SUCCEEDED, tool__name__in=writes, compensates__isnull=True
        )
        .exclude(pk__in=by_hand.values("compensates"))
        .select_related("tool")
        .order_by("-seq")
    )


def undone_by_hand(item: ReviewItem, undo: Step, run: Run, approved: bool, why: str) -> None:
    """A person undid a write by hand (approved) or will not (rejected); the run is rolled back once no write
    remains in effect."""
    original = undo.compensates
    assert original is not None
    if approved and original.status == StepStatus.SUCCEEDED:
        original.status = StepStatus.COMPENSATED
        original.save(update_fields=["status"])
    undo.detail = {**undo.detail, "by_hand": why}
    undo.save(update_fields=["detail"])
    audit_record(
        actor=Actor.system("approvals"),
        target=original,
        correlation_id=run.correlation_id,
        action="agent.tool.undone_by_hand" if approved else "agent.tool.left_in_effect",
        details={"why": why, "review": item.pk},
    )
    pending = Step.objects.filter(run=run, compensates__isnull=False, review__status=ReviewStatus.PENDING)
    if approved and run.status != RunStatus.ROLLED_BACK and not _write_steps(run) and not pending.exists():
        runtime.roll_back(run)
        audit_record(
            actor=Actor.system("approvals"),
            action="agent.run.compensated",
            target=run,
            correlation_id=run.correlation_id,
            details={"complete": True, "status": run.status, "outcome": run.outcome},
        )


def compensate(run_id: Any, actor_id: int) -> None:
    """Undo the run's successful write steps newest first through each tool's compensation. A step with no
    compensation (or whose compensation fails) is sent to the review queue as not reversible; the run ends
    ``rolled_back`` when everything was undone."""
    actor = User.objects.get(pk=actor_id)
    run = Run.objects.select_related("agent", "version").get(pk=run_id)
    complete = True
    pinned = tool_versions.pinned(run.version_id)
    for step in _write_steps(run):
        assert step.tool is not None
        compensation = pinned[step.tool.name].compensation
        failure, arguments, result, tool = "", {}, None, None
        if not compensation:
            failure = f"{step.tool.name} has no compensation: it is not reversible"
        else:
            tool = Tool.objects.filter(name=compensation["tool"], available=True).first()
            facts = runtime.compensation_facts(step)
            try:
                arguments = {
                    name: compile_condition(expr).value(facts) for name, expr in compensation["arguments"].items()
                }
                if tool is None or compensation["tool"] not in pinned:
                    raise tools.ToolFailure(f"the compensating tool {compensation['tool']!r} is not available")
                result = runtime.execute(tool, pinned[tool.name], arguments, f"{run.pk}:{step.seq}:undo")
            except (ConditionError, ConditionRuntimeError, tools.ToolFailure) as error:
                failure = f"compensating {step.tool.name} failed: {error}"
        with transaction.atomic(), audit_context(actor=audit_actor(actor), correlation_id=run.correlation_id):
            undo = runtime.append_step(
                run,
                StepKind.TOOL_CALL,
                StepStatus.FAILED if failure else StepStatus.SUCCEEDED,
                tool=tool,
                arguments=arguments,
                result=result,
                error=failure,
                compensates=step,
                detail={"tool_name": tool.name if tool else "", "compensation": True},
            )
            if failure:
                complete = False
                undo.review = review_item_open(
                    kind=ReviewKind.TOOL_APPROVAL,
                    subject=undo,
                    subject_label=f"undo {step.tool.name} of run {str(run.pk)[:8]}",
                    reason=f"Not reversible automatically: {failure}. Undo it by hand, then approve; or reject.",
                    raised_by=f"compensation of run {run.pk}",
                    risk=pinned[step.tool.name].risk or Risk.HIGH,
                    requested_by=actor,
                    payload={
                        "run": str(run.pk),
                        "step": step.seq,
                        "tool": step.tool.name,
                        "arguments": step.arguments,
                        "result": step.result,
                        "question": "manual_undo",
                    },
                    due_in=dt.timedelta(hours=settings.AGENTS_APPROVAL_HOURS),
                )
                undo.save(update_fields=["review"])
            else:
                step.status = StepStatus.COMPENSATED
                step.save(update_fields=["status"])
            audit_record(
                actor=audit_actor(actor),
                action="agent.tool.not_reversible" if failure else "agent.tool.compensated",
                target=step,
                details={
                    "tool": step.tool.name,
                    "undo_step": undo.seq,
                    "error": failure,
                    "arguments": json.loads(json.dumps(arguments, default=str)),
                },
            )
    with transaction.atomic(), audit_context(actor=audit_actor(actor), correlation_id=run.correlation_id):
        run = Run.objects.select_for_update().get(pk=run_id)
        if complete:
            runtime.roll_back(run)
        audit_record(
            actor=audit_actor(actor),
            action="agent.run.compensated",
            target=run,
            details={"complete": complete, "status": run.status, "outcome": run.outcome},
        )
