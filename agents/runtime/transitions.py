"""A run's state machine: the statuses it may go to from each, and every change of status through ``change``.

    queued             → running (claimed), cancelled
    running            → running (claimed again once its lease expired), queued (handed back by a worker that
                         shuts down), awaiting_approval, succeeded, failed, cancelled, timed_out
    awaiting_approval  → queued (nothing left to decide), failed, cancelled, timed_out
    succeeded, failed,
    cancelled, timed_out → rolled_back (every write undone)
    rolled_back        → (nothing)

A run that leaves ``running`` gives its lease up; one that ends has its outcome decided (``agents.outcomes``) from
its steps in the same change, and the end is recorded (``agent.run.<status>``) and announced (``announcement``).
"""

from collections.abc import Callable, Iterable
from typing import Any, cast

from django.utils import timezone

from agents import outcomes, tool_versions
from agents.models import FINISHED_RUN_STATUSES, Run, RunStatus, SideEffect, Step, StepKind
from agents.signals import run_finished
from audit.context import Actor
from audit.services import audit_record
from governance.models import ReviewItem, ReviewStatus

S = RunStatus
TRANSITIONS: dict[str, tuple[str, ...]] = {
    S.QUEUED: (S.RUNNING, S.CANCELLED),
    S.RUNNING: (S.RUNNING, S.QUEUED, S.AWAITING_APPROVAL, S.SUCCEEDED, S.FAILED, S.CANCELLED, S.TIMED_OUT),
    S.AWAITING_APPROVAL: (S.QUEUED, S.FAILED, S.CANCELLED, S.TIMED_OUT),
    S.SUCCEEDED: (S.ROLLED_BACK,),
    S.FAILED: (S.ROLLED_BACK,),
    S.CANCELLED: (S.ROLLED_BACK,),
    S.TIMED_OUT: (S.ROLLED_BACK,),
    S.ROLLED_BACK: (),
}
# The steps a run's outcome is decided from.
OUTCOME_KINDS = (StepKind.TOOL_CALL, StepKind.APPROVAL, StepKind.GUARDRAIL)
END_FIELDS = ("result", "error", "finished_at", "outcome", "outcome_reason")


class InvalidTransition(Exception):
    pass


def sources(status: str) -> list[str]:
    """The statuses a run may go to ``status`` from."""
    return [source for source, targets in TRANSITIONS.items() if status in targets]


def change(run: Run, status: str) -> list[str]:
    """Move the run (in memory) to ``status``; the fields to save. A run leaving ``running`` gives up its lease."""
    if status not in TRANSITIONS[run.status]:
        raise InvalidTransition(f"a {run.status} run cannot become {status}")
    run.status, run.updated_at = status, timezone.now()
    fields = ["status", "updated_at"]
    if status != RunStatus.RUNNING:
        run.lease_owner, run.lease_expires_at = "", None
        fields += ["lease_owner", "lease_expires_at"]
    return fields


def end(run: Run, status: str, steps: Iterable[Step], *, result: Any = None, error: str = "") -> list[str]:
    """End the run (in memory) with ``status`` and the outcome its ``steps`` give; the fields to save."""
    assert status in FINISHED_RUN_STATUSES
    answer = result.get("answer") if isinstance(result, dict) else None
    decided = outcomes.decide(status=status, steps=outcome_facts(run, steps), answer=answer, error=error)
    fields = change(run, status)
    run.result, run.error, run.finished_at = result, error, timezone.now()
    run.outcome, run.outcome_reason = decided.outcome, decided.reason
    return [*fields, *END_FIELDS]


def record_end(run: Run, actor: Actor) -> None:
    """Record the end of a run (``agent.run.<status>``), in the transaction that saves it."""
    audit_record(
        actor=actor,
        action=f"agent.run.{run.status}",
        target=run,
        correlation_id=run.correlation_id,
        details={
            "error": run.error,
            "steps": run.steps_used,
            "tokens": run.tokens_used,
            "cost": str(run.cost_used),
            "outcome": run.outcome,
            "outcome_reason": run.outcome_reason,
        },
    )


def announcement(run: Run) -> list[Callable[[], None]]:
    """What the receivers of ``run_finished`` (a persona waiting on the run, webhooks) write with the run's end: to
    be called in the transaction that writes it (see ``agents.signals``)."""
    responses = cast(list[tuple[Any, Callable[[], None] | None]], run_finished.send(sender=Run, run=run))
    return [write for _, write in responses if write is not None]


def end_now(run: Run, status: str, actor: Actor, *, error: str) -> None:
    """End a run no worker holds (queued, or waiting for a person), saved at once, in the caller's transaction."""
    steps = Step.objects.filter(run_id=run.pk, kind__in=OUTCOME_KINDS).select_related("tool").order_by("seq")
    run.save(update_fields=end(run, status, steps, error=error))
    record_end(run, actor)
    for write in announcement(run):
        write()


def roll_back(run: Run) -> None:
    """Mark a run whose every write was undone ``rolled_back``: whatever it achieved, it is not completed now."""
    decided = outcomes.decide(status=RunStatus.ROLLED_BACK, steps=())
    fields = change(run, RunStatus.ROLLED_BACK)
    run.outcome, run.outcome_reason = decided.outcome, decided.reason
    run.save(update_fields=[*fields, "outcome", "outcome_reason"])


def outcome_facts(run: Run, steps: Iterable[Step]) -> list[outcomes.StepFacts]:
    """What the outcome rules read of the run's tool calls, approvals and guardrails, with which of the items they
    waited for expired (read only when some step waited for one)."""
    relevant = [step for step in steps if step.kind in OUTCOME_KINDS]
    reviews = [step.review_id for step in relevant if step.review_id is not None]
    expired = (
        set(ReviewItem.objects.filter(pk__in=reviews, status=ReviewStatus.EXPIRED).values_list("pk", flat=True))
        if reviews
        else set()
    )
    pinned = tool_versions.pinned(run.version_id)

    def writes(step: Step) -> bool:
        return (
            step.tool is not None
            and step.tool.name in pinned
            and pinned[step.tool.name].side_effect == SideEffect.WRITE
        )

    return [outcomes.facts_of(step, write=writes(step), expired=step.review_id in expired) for step in relevant]
