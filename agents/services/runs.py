"""Runs: starting (the agent version a label points at, pinned with its policies), cancelling, and sweeping up
the runs that should be moving but are not."""

import datetime as dt
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from agents import runtime
from agents.models import FINISHED_RUN_STATUSES, Run, RunStatus, StepStatus
from agents.services.common import ADVANCE_TASK, AGENT_KIND, enqueue_run, require
from agents.spec import input_errors
from audit.context import Actor, audit_context
from audit.services import audit_record
from config import enqueue
from config.errors import Conflict, DomainError, NotAllowed
from governance.guardrails import POLICY_KIND
from governance.models import (
    LabelPointer,
)
from governance.services import audit_actor, label_resolve, review_item_withdraw


@transaction.atomic
def run_start(
    *, actor: User, agent: str, input: dict[str, Any], label: str = "production", idempotency_key: str = ""
) -> tuple[Run, bool]:
    """Start a run of the agent version released under ``label`` (pinned, with the guardrail policies released
    under it). The same ``idempotency_key`` from the same user returns the existing run. Returns (run, created)."""
    require(actor, "agents.start_run", "start runs")
    return _start(actor=actor, agent=agent, input=input, label=label, idempotency_key=idempotency_key)


@transaction.atomic
def run_start_handoff(
    *, requested_by: User, agent: str, input: dict[str, Any], label: str, origin: str, correlation_id: Any
) -> Run:
    """Start a run for a released persona's hand-off step, on behalf of the conversation's client. The persona
    version that asks for it was reviewed and released, which is what authorises it; the run is audited under
    the conversation's correlation id and says where it came from (``origin``)."""
    run, _ = _start(
        actor=requested_by, agent=agent, input=input, label=label, origin=origin, correlation_id=correlation_id
    )
    return run


def _start(
    *,
    actor: User,
    agent: str,
    input: dict[str, Any],
    label: str,
    idempotency_key: str = "",
    origin: str = "",
    correlation_id: Any = None,
) -> tuple[Run, bool]:
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
        .order_by("object__slug")
        .values_list("object__slug", "version__number", "version_id")
    )
    try:
        # A savepoint only where a concurrent request may have used the same key first.
        with transaction.atomic(savepoint=bool(idempotency_key)):
            run = Run.objects.create(
                agent=version.object,
                version=version,
                label=label,
                requested_by=actor,
                input=input,
                idempotency_key=idempotency_key,
                origin=origin,
                correlation_id=correlation_id or uuid.uuid4(),
                policy_versions=[{"slug": slug, "version": number, "id": pk} for slug, number, pk in pinned],
            )
    except IntegrityError:  # the same key, started concurrently: the other request won
        existing = Run.objects.get(requested_by=actor, idempotency_key=idempotency_key)
        _same_request(existing, agent, input, label)
        return existing, False
    audit_record(
        actor=audit_actor(actor),
        action="agent.run.started",
        target=run,
        correlation_id=run.correlation_id,
        details={
            "agent": agent,
            "version": version.number,
            "label": label,
            "idempotency_key": idempotency_key,
            "origin": origin,
            "policies": [f"{p['slug']} v{p['version']}" for p in run.policy_versions],
        },
    )
    enqueue_run(run)
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
        require(actor, "agents.cancel_run", "cancel runs others started")
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
    audit_record(
        actor=actor,
        action="agent.run.cancel_requested",
        target=run,
        correlation_id=run.correlation_id,
        details={"reason": reason, "status": run.status},
    )
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


def runs_sweep() -> int:
    """Enqueue every run that should be moving but is not: running with an expired lease, or queued for longer
    than a lease (its message was lost). Each at most once a lease: a run sent is marked (``swept_at``) and sent
    again only once another lease has passed without it moving, so that a backlog waiting in the queue is not sent
    again at every sweep. Returns how many were enqueued."""
    now = timezone.now()
    lease = dt.timedelta(seconds=settings.AGENTS_LEASE_SECONDS)
    due = (
        Q(status=RunStatus.RUNNING, lease_expires_at__lt=now) | Q(status=RunStatus.QUEUED, updated_at__lt=now - lease)
    ) & (Q(swept_at__isnull=True) | Q(swept_at__lt=now - lease))
    count = 0
    for run_id in Run.objects.filter(due).values_list("pk", flat=True):
        if Run.objects.filter(due, pk=run_id).update(swept_at=now):  # not sent by another sweeper meanwhile
            enqueue.enqueue_after_commit(ADVANCE_TASK, str(run_id), later="a sweep a lease from now")
            count += 1
    return count
