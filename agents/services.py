"""Agents: every state change, each in one transaction with its audit event.

Starting, cancelling and compensating runs, deciding tool approvals (approve, reject, or approve with edited
arguments), syncing the tools registered in code (their definitions submitted for review as versions of kind
``tool``), and HTTP tools configured in the console (likewise). The runtime itself (``agents.runtime``)
advances runs in Celery tasks; these services enqueue that work after their transaction commits.
"""

import datetime as dt
import json
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.dispatch import receiver
from django.utils import timezone

from agents import http_tools, runtime, tool_versions, tools
from agents.models import FINISHED_RUN_STATUSES, Run, RunStatus, Step, StepKind, StepStatus, Tool, ToolKind
from agents.spec import input_errors
from audit.context import Actor, audit_context
from audit.services import audit_record
from config import enqueue
from config.errors import BrokerUnavailable, Conflict, DomainError, NotAllowed, NotFound
from governance import selectors
from governance import services as governance_services
from governance.guardrails import POLICY_KIND
from governance.models import (
    GovernedObject,
    LabelPointer,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
    Risk,
    Version,
    VersionStatus,
)
from governance.policies import ConditionError, ConditionRuntimeError, compile_condition
from governance.registry import get_kind
from governance.services import audit_actor, label_resolve, review_decide, review_item_open, review_item_withdraw
from governance.signals import review_item_decided, review_item_expired

AGENT_KIND = "agent"
STEP_SUBJECT = Step._meta.label_lower


def _enqueue(run: Run) -> None:
    """Advance the run once the transaction commits. With the broker down the run stays queued, committed, and the
    sweeper (``runs_sweep``) dispatches it once it has waited a lease."""
    from agents.tasks import run_advance_task

    enqueue.enqueue_after_commit(run_advance_task, str(run.pk), later="the runs sweeper")


# --- tools --------------------------------------------------------------------------------------------------------


@transaction.atomic
def tools_sync(*, actor: Actor) -> dict[str, list[str]]:
    """Write every tool registered in code to the ``Tool`` table and its definition into the draft of its governed
    object (kind ``tool``), as the system ``actor``. A definition that differs from the tool's latest version is
    submitted for review: nothing an agent uses changes until a version is approved and released (and an agent
    version pins it). Tools whose code is gone become unavailable; an HTTP tool's definition carried over from
    before tools were versioned, never submitted, is submitted too. A definition the kind refuses is reported."""
    now = timezone.now()
    registered = tools.registered()
    changes: dict[str, list[str]] = {"created": [], "submitted": [], "retired": [], "refused": []}
    for name, spec in sorted(registered.items()):
        tool, created = Tool.objects.get_or_create(
            name=name, defaults={"kind": ToolKind.PYTHON, "synced_at": now, "updated_at": now}
        )
        if created:
            changes["created"].append(name)
        elif not tool.available or tool.kind != ToolKind.PYTHON:
            tool.kind, tool.available, tool.synced_at, tool.updated_at = ToolKind.PYTHON, True, now, now
            tool.save(update_fields=["kind", "available", "synced_at", "updated_at"])
        _propose(actor, name, tool_versions.code_spec(spec), changes)
    for tool in Tool.objects.filter(kind=ToolKind.PYTHON, available=True).exclude(name__in=list(registered)):
        tool.available, tool.updated_at = False, now
        tool.save(update_fields=["available", "updated_at"])
        changes["retired"].append(tool.name)
    carried = GovernedObject.objects.filter(kind=tool_versions.TOOL_KIND, versions__isnull=True).exclude(
        slug__in=list(registered)
    )
    for obj in carried.filter(slug__in=Tool.objects.filter(kind=ToolKind.HTTP).values("name")):
        _propose(actor, obj.slug, obj.draft, changes)
    if any(changes.values()):
        audit_record(actor=actor, action="agent.tools.synced", target=None, details=changes)
    return changes


def _propose(actor: Actor, name: str, definition: dict[str, Any], changes: dict[str, list[str]]) -> None:
    """Write ``definition`` into the tool's draft and submit it as the system unless the latest version has it."""
    try:
        with transaction.atomic():
            obj = governance_services.draft_write_by_system(
                actor=actor, kind=tool_versions.TOOL_KIND, slug=name, name=name, draft=definition
            )
            latest = obj.versions.order_by("-number").first()
            if latest is None or latest.checksum != governance_services.spec_checksum(definition):
                governance_services.version_submit_by_system(actor=actor, obj=obj, note="Synced from code.")
                changes["submitted"].append(name)
    except DomainError as error:
        problems = "; ".join(f"{path}: {' '.join(messages)}" for path, messages in error.fields.items())
        changes["refused"].append(f"{name}: {error.message} {problems}".strip())


# --- runs ---------------------------------------------------------------------------------------------------------


def _require(user: User, permission: str, doing: str) -> None:
    if not user.has_perm(permission):
        raise NotAllowed(f"You may not {doing}: it needs the permission {permission}.")


@transaction.atomic
def run_start(
    *, actor: User, agent: str, input: dict[str, Any], label: str = "production", idempotency_key: str = ""
) -> tuple[Run, bool]:
    """Start a run of the agent version released under ``label`` (pinned, with the guardrail policies released
    under it). The same ``idempotency_key`` from the same user returns the existing run. Returns (run, created)."""
    _require(actor, "agents.start_run", "start runs")
    return _start(actor=actor, agent=agent, input=input, label=label, idempotency_key=idempotency_key)


@transaction.atomic
def run_start_handoff(
    *, requested_by: User, agent: str, input: dict[str, Any], label: str, origin: str, correlation_id: Any
) -> Run:
    """Start a run for a released persona's hand-off step, on behalf of the conversation's client. The persona
    version that asks for it was reviewed and released, which is what authorises it; the run is audited under
    the conversation's correlation id and says where it came from (``origin``)."""
    run, _ = _start(actor=requested_by, agent=agent, input=input, label=label, origin=origin,
                    correlation_id=correlation_id)  # fmt: skip
    return run


def _start(
    *, actor: User, agent: str, input: dict[str, Any], label: str, idempotency_key: str = "", origin: str = "",
    correlation_id: Any = None,
) -> tuple[Run, bool]:  # fmt: skip
    if idempotency_key:
        existing = Run.objects.filter(requested_by=actor, idempotency_key=idempotency_key).first()
        if existing is not None:
            _same_request(existing, agent, input, label)
            return existing, False
    version = label_resolve(kind=AGENT_KIND, slug=agent, label=label)
    if errors := input_errors(version.spec, input):
        raise DomainError(f"The input does not match what {agent} v{version.number} takes.", fields=errors)
    pinned = (
        LabelPointer.objects.filter(object__kind=POLICY_KIND, label__name=label)
        .select_related("object", "version")
        .order_by("object__slug")
    )
    try:
        with transaction.atomic():
            run = Run.objects.create(
                agent=version.object, version=version, label=label, requested_by=actor, input=input,
                idempotency_key=idempotency_key, origin=origin, correlation_id=correlation_id or uuid.uuid4(),
                policy_versions=[{"slug": p.object.slug, "version": p.version.number, "id": p.version.pk}
                                 for p in pinned],
            )  # fmt: skip
    except IntegrityError:  # the same key, started concurrently: the other request won
        existing = Run.objects.get(requested_by=actor, idempotency_key=idempotency_key)
        _same_request(existing, agent, input, label)
        return existing, False
    audit_record(
        actor=audit_actor(actor), action="agent.run.started", target=run, correlation_id=run.correlation_id,
        details={"agent": agent, "version": version.number, "label": label, "idempotency_key": idempotency_key,
                 "origin": origin, "policies": [f"{p['slug']} v{p['version']}" for p in run.policy_versions]},
    )  # fmt: skip
    _enqueue(run)
    return run, True


def _same_request(run: Run, agent: str, input: dict[str, Any], label: str) -> None:
    if (run.agent.slug, run.input, run.label) != (agent, input, label):
        raise Conflict(
            "This idempotency key was used for a different request.",
            code="idempotency_key_reused",
            fields={"idempotency_key": [f"Already used for run {run.pk}."]},
        )


@transaction.atomic
def run_cancel(*, actor: User, run: Run, reason: str = "") -> Run:
    """Stop a run: at once when it is queued or waiting for a person, else at its next step boundary. Whoever
    started a run may cancel it; anyone else's run needs the permission to cancel runs (Operators)."""
    if run.requested_by_id != actor.pk:
        _require(actor, "agents.cancel_run", "cancel runs others started")
    return _cancel(actor=audit_actor(actor), who=actor.get_username(), run=run, reason=reason)


@transaction.atomic
def run_cancel_handoff(*, run: Run, origin: str, reason: str) -> Run:
    """Stop a run that a persona's hand-off started, for that persona (the user wrote again and the persona's
    policy is to interrupt). Only the origin that started the run may stop it this way."""
    if run.origin != origin:
        raise NotAllowed("Only what started this run may stop it on its behalf.")
    return _cancel(actor=Actor.system(origin), who=origin, run=run, reason=reason)


def _cancel(*, actor: Actor, who: str, run: Run, reason: str) -> Run:
    run = Run.objects.select_for_update(of=("self",)).select_related("agent").get(pk=run.pk)
    if run.status in FINISHED_RUN_STATUSES:
        raise Conflict(f"This run is {run.get_status_display()} already.", code="finished")
    audit_record(actor=actor, action="agent.run.cancel_requested", target=run,
                 correlation_id=run.correlation_id, details={"reason": reason, "status": run.status})  # fmt: skip
    if run.status == RunStatus.RUNNING:
        run.cancel_requested = True
        run.save(update_fields=["cancel_requested"])
        return run
    for step in run.steps.filter(status=StepStatus.AWAITING_APPROVAL).select_related("review"):
        if step.review is not None:
            review_item_withdraw(item=step.review)
        step.status, step.error, step.finished_at = StepStatus.DENIED, "the run was cancelled", timezone.now()
        step.save(update_fields=["status", "error", "finished_at"])
    run.cancel_requested = True
    run.save(update_fields=["cancel_requested"])
    with audit_context(actor=actor, correlation_id=run.correlation_id):
        error = f"Cancelled by {who}" + (f": {reason}" if reason else ".")
        runtime.end_now(run, RunStatus.CANCELLED, runtime.run_actor(run), error=error)
    return run


# --- approvals ----------------------------------------------------------------------------------------------------


RUN_APPROVALS = (ReviewKind.TOOL_APPROVAL, ReviewKind.BUDGET_OVERRUN)  # what a run waits for a person about


def approval_step(item: ReviewItem) -> Step:
    """The step a run's approval is about: a tool call, or the ``approval`` step of a budget overrun."""
    if item.kind not in RUN_APPROVALS or item.subject_type != STEP_SUBJECT:
        raise NotFound("That review item is not a run's approval.")
    return Step.objects.select_related("run", "run__agent", "run__version", "tool").get(pk=item.subject_id)


@transaction.atomic
def approval_decide(
    *, actor: User, item: ReviewItem, decision: str, digest: str, comment: str = "",
    arguments: dict[str, Any] | None = None,
) -> ReviewItem:  # fmt: skip
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
    if step.tool is None or item.payload.get("question") != "approval":
        raise Conflict("Only a proposed tool call can be approved with other arguments.", code="not_editable")
    if digest != selectors.review_digest(item):
        raise Conflict("What you reviewed is not what is pending: reload it and decide again.", code="stale_digest",
                       fields={"digest": ["Does not match the item's current digest."]})  # fmt: skip
    assert step.tool is not None
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
    if item.status == ReviewStatus.PENDING and item.requested_by_id != actor.pk:
        before = item.payload.get("arguments")
        item.payload = {**item.payload, "arguments": arguments}
        item.digest = selectors.review_digest(item)
        item.save(update_fields=["payload", "digest"])
        audit_record(actor=audit_actor(actor), action="agent.approval.edited", target=step,
                     correlation_id=step.run.correlation_id,
                     details={"before": before, "after": arguments, "digest": item.digest})  # fmt: skip
    return review_decide(actor=actor, item=item, decision="approve", digest=item.digest,
                         comment=comment or "approved with edited arguments")  # fmt: skip


def _settle(item: ReviewItem, approved: bool, why: str) -> None:
    """Apply a final decision (or expiry) to the step it concerns and resume the run."""
    step = approval_step(item)
    run = Run.objects.select_for_update().get(pk=step.run_id)
    step = Step.objects.select_for_update(of=("self",)).select_related("tool", "compensates").get(pk=step.pk)
    question = item.payload.get("question", "approval")
    if question == "manual_undo":
        _undone_by_hand(item, step, run, approved, why)
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
    audit_record(actor=Actor.system("approvals"), action=f"agent.approval.{'approved' if approved else 'denied'}",
                 target=step, correlation_id=run.correlation_id, details={"why": why, "review": item.pk})  # fmt: skip
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
        _enqueue(run)


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
        audit_record(actor=Actor.system("approvals"), action="agent.budget.extended", target=step,
                     correlation_id=run.correlation_id,
                     details={"budget": budget, "extension": extension, "why": why, "review": item.pk})  # fmt: skip
        _resume(run)
        return
    step.status, step.error = StepStatus.DENIED, why
    step.save(update_fields=["status", "error", "finished_at"])
    for proposed in run.steps.filter(kind=StepKind.TOOL_CALL, status=StepStatus.PROPOSED):
        proposed.status, proposed.finished_at = StepStatus.DENIED, now
        proposed.error = f"not called: more {budget} budget was refused"
        proposed.save(update_fields=["status", "error", "finished_at"])
    audit_record(actor=Actor.system("approvals"), action="agent.budget.refused", target=step,
                 correlation_id=run.correlation_id,
                 details={"budget": budget, "why": why, "review": item.pk})  # fmt: skip
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


# --- compensation -------------------------------------------------------------------------------------------------


@transaction.atomic
def run_compensate(*, actor: User, run: Run, reason: str) -> Run:
    """Ask for a finished run's side effects to be undone (newest first, by a Celery task)."""
    _require(actor, "agents.compensate_run", "compensate runs")
    if not reason.strip():
        raise DomainError("Say why the run is undone.", fields={"reason": ["This field is required."]})
    run = Run.objects.select_for_update(of=("self",)).select_related("agent").get(pk=run.pk)
    if run.status not in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT):
        raise Conflict(f"A {run.get_status_display()} run cannot be compensated: cancel it or wait for it to end.")
    if not _write_steps(run):
        raise Conflict("This run changed nothing: there is nothing to undo.", code="nothing_to_undo")
    audit_record(actor=audit_actor(actor), action="agent.run.compensation_requested", target=run,
                 correlation_id=run.correlation_id, details={"reason": reason})  # fmt: skip
    transaction.on_commit(lambda: _compensation_enqueue(run, actor))
    return run


def _compensation_enqueue(run: Run, actor: User) -> None:
    """Send the compensation to a worker. No sweeper would find a request the broker never got, so a broker that is
    down refuses it (503): nothing is undone, the trail says so, and asking again once the broker is back works."""
    from agents.tasks import run_compensate_task

    try:
        enqueue.send(run_compensate_task, str(run.pk), actor.pk)
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
        run.steps.filter(kind=StepKind.TOOL_CALL, status=StepStatus.SUCCEEDED, tool__name__in=writes,
                         compensates__isnull=True)
        .exclude(pk__in=by_hand.values("compensates"))
        .select_related("tool").order_by("-seq")
    )  # fmt: skip


def _undone_by_hand(item: ReviewItem, undo: Step, run: Run, approved: bool, why: str) -> None:
    """A person undid a write by hand (approved) or will not (rejected); the run is rolled back once no write
    remains in effect."""
    original = undo.compensates
    assert original is not None
    if approved and original.status == StepStatus.SUCCEEDED:
        original.status = StepStatus.COMPENSATED
        original.save(update_fields=["status"])
    undo.detail = {**undo.detail, "by_hand": why}
    undo.save(update_fields=["detail"])
    audit_record(actor=Actor.system("approvals"), target=original, correlation_id=run.correlation_id,
                 action="agent.tool.undone_by_hand" if approved else "agent.tool.left_in_effect",
                 details={"why": why, "review": item.pk})  # fmt: skip
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
            undo = runtime.append_step(run, StepKind.TOOL_CALL, StepStatus.FAILED if failure else StepStatus.SUCCEEDED,
                                     tool=tool, arguments=arguments, result=result, error=failure, compensates=step,
                                     detail={"tool_name": tool.name if tool else "", "compensation": True})  # fmt: skip
            if failure:
                complete = False
                undo.review = review_item_open(
                    kind=ReviewKind.TOOL_APPROVAL, subject=undo,
                    subject_label=f"undo {step.tool.name} of run {str(run.pk)[:8]}",
                    reason=f"Not reversible automatically: {failure}. Undo it by hand, then approve; or reject.",
                    raised_by=f"compensation of run {run.pk}", risk=pinned[step.tool.name].risk or Risk.HIGH,
                    requested_by=actor,
                    payload={"run": str(run.pk), "step": step.seq, "tool": step.tool.name, "arguments": step.arguments,
                             "result": step.result, "question": "manual_undo"},
                    due_in=dt.timedelta(hours=settings.AGENTS_APPROVAL_HOURS),
                )  # fmt: skip
                undo.save(update_fields=["review"])
            else:
                step.status = StepStatus.COMPENSATED
                step.save(update_fields=["status"])
            audit_record(
                actor=audit_actor(actor),
                action="agent.tool.not_reversible" if failure else "agent.tool.compensated",
                target=step,
                details={"tool": step.tool.name, "undo_step": undo.seq, "error": failure,
                         "arguments": json.loads(json.dumps(arguments, default=str))},
            )  # fmt: skip
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


def runs_sweep() -> int:
    """Enqueue every run that should be moving but is not: running with an expired lease, or queued for longer
    than a lease (its message was lost). Returns how many were enqueued."""
    from agents.tasks import run_advance_task

    now = timezone.now()
    stale = Run.objects.filter(
        Q(status=RunStatus.RUNNING, lease_expires_at__lt=now)
        | Q(status=RunStatus.QUEUED, updated_at__lt=now - dt.timedelta(seconds=settings.AGENTS_LEASE_SECONDS))
    ).values_list("pk", flat=True)
    count = 0
    for run_id in stale:
        run_advance_task.delay(str(run_id))
        count += 1
    return count


# --- HTTP tools ---------------------------------------------------------------------------------------------------


# Where the console's form calls a definition's fields (``http_method``), when it names them otherwise.
FORM_FIELDS = {"method": "http_method"}


def _http_definition(values: dict[str, Any], secret_names: list[str]) -> dict[str, Any]:
    return {
        "kind": ToolKind.HTTP.value,
        "description": values["description"],
        "parameters": values.get("parameters") or {},
        "side_effect": values["side_effect"],
        "risk": values["risk"],
        "idempotent": values["idempotent"],
        "timeout_seconds": values["timeout_seconds"],
        "compensation": None,
        "method": values["http_method"],
        "url_template": values["url_template"],
        "headers": values.get("headers") or {},
        "allowed_hosts": values.get("allowed_hosts") or [],
        "allow_private": values["allow_private"],
        "secret_headers": secret_names,
    }


@transaction.atomic
def http_tool_save(
    *, actor: User, tool: Tool | None, values: dict[str, Any], secret_headers: dict[str, str] | None
) -> tuple[Tool, Version | None]:
    """Create or change an HTTP tool (Admins). Its definition goes into the draft of its governed object (kind
    ``tool``) and is submitted for review as a new version, which someone who did not edit it approves; nothing an
    agent uses changes until then, and only agent versions submitted after its release pin it. Returns the tool and
    the version submitted (None when the definition is the latest version's already).

    ``secret_headers`` replaces the stored values (None keeps them): they are stored encrypted on the tool, never in
    a version, which names them only; a changed value is in effect at once (a credential, not behaviour). The trail
    records header names, never values."""
    _require(actor, "agents.change_tool" if tool else "agents.add_tool", "configure tools")
    name = tool.name if tool else values["name"]
    if tool is None and Tool.objects.filter(name=name).exists():
        raise Conflict(f"A tool called {name!r} exists already.", fields={"name": ["Already used."]})
    stored = http_tools.stored_secrets(tool) if tool and secret_headers is None else secret_headers or {}
    definition = _http_definition(values, sorted(stored))
    errors = get_kind(tool_versions.TOOL_KIND).validate(definition)
    if errors:
        fields = {FORM_FIELDS.get(path, path) or "__all__": messages for path, messages in errors.items()}
        raise DomainError("The HTTP tool is not valid.", fields=fields)
    created = tool is None
    if tool is None:
        tool = Tool.objects.create(name=name, kind=ToolKind.HTTP)
    if secret_headers is not None:
        tool.secret_headers = http_tools.encrypt_headers(secret_headers)
    tool.updated_at = timezone.now()
    tool.save(update_fields=["secret_headers", "updated_at"])
    version = _http_definition_submit(actor, name, definition)
    audit_record(
        actor=audit_actor(actor), action=f"agent.tool.{'created' if created else 'updated'}", target=tool,
        details={"kind": "http", "method": definition["method"], "url_template": definition["url_template"],
                 "allowed_hosts": definition["allowed_hosts"], "allow_private": definition["allow_private"],
                 "headers": sorted(definition["headers"]), "secret_headers": definition["secret_headers"],
                 "secret_headers_changed": secret_headers is not None,
                 "version": version.number if version else None},
    )  # fmt: skip
    return tool, version


def _http_definition_submit(actor: User, name: str, definition: dict[str, Any]) -> Version | None:
    """Put ``definition`` in the tool's draft (created with it) and submit it, unless a version pending or approved
    has it already."""
    obj = GovernedObject.objects.filter(kind=tool_versions.TOOL_KIND, slug=name).first()
    if obj is None:
        obj = governance_services.governed_object_create(
            actor=actor, kind=tool_versions.TOOL_KIND, slug=name, name=name, draft=definition
        )
    else:
        obj = governance_services.draft_update(actor=actor, obj=obj, draft=definition)
    latest = obj.versions.order_by("-number").first()
    checksum = governance_services.spec_checksum(definition)
    if latest and latest.checksum == checksum and latest.status in (VersionStatus.PENDING, VersionStatus.APPROVED):
        return None
    return governance_services.version_submit(actor=actor, obj=obj, note="Edited in the console.")
