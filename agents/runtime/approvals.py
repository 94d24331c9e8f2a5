"""Parking a run for a person: a tool call that needs approval (or was interrupted and may not be repeated
blindly), or a budget about to be exceeded. The review item is opened in the transaction that parks the run, which
then holds no worker until the decision (``agents.services`` settles it and sends the run back to the queue)."""

import datetime as dt
from typing import Any

from django.conf import settings
from django.utils import timezone

from agents.models import Run, RunStatus, Step, StepKind, StepStatus, ToolKind
from agents.runtime.session import Session
from agents.tool_versions import ToolDefinition
from audit.services import audit_record
from governance.models import ReviewKind, Risk
from governance.services import review_item_open


def payload(run: Run, step: Step, tool: ToolDefinition, arguments: dict[str, Any]) -> dict[str, Any]:
    """What an approver is shown and their decision is bound to: the tool as the agent version pins it (its version,
    risk and, for an HTTP tool, the request), the arguments and the agent version."""
    shown = {
        "run": str(run.pk),
        "agent": run.agent.slug,
        "version": run.version.number,
        "version_checksum": run.version.checksum,
        "tool": step.detail.get("tool_name", ""),
        "tool_version": tool.version,
        "risk": tool.risk,
        "arguments": arguments,
        "step": step.seq,
    }
    if tool.kind == ToolKind.HTTP:
        shown["request"] = {"method": tool.method, "url_template": tool.url_template}
    return shown


def _park(session: Session) -> None:
    session.run.parked_at = timezone.now()
    session.save_run("parked_at")
    session.change(RunStatus.AWAITING_APPROVAL)


def _open_review(session: Session, step: Step, action: str, details: dict[str, Any], **item: Any) -> None:
    """As the step commits (it needs the step's id): open the review item ``item`` describes for ``step``, link it
    to the step, and record ``action`` with ``details`` and the item's id."""
    run = session.run

    def open_item() -> None:
        review = review_item_open(
            subject=step,
            raised_by=f"agent {run.agent.slug} v{run.version.number}",
            requested_by=run.requested_by,
            due_in=dt.timedelta(hours=settings.AGENTS_APPROVAL_HOURS),
            **item,
        )
        step.review = review
        step.save(update_fields=["review"])
        audit_record(actor=session.actor, action=action, target=step, details={**details, "review": review.pk})

    session.in_commit.append(open_item)


def park_call(session: Session, step: Step, tool: ToolDefinition, reason: str, *, kind: str = "approval") -> None:
    """Ask a person whether the call ``step`` may be made (``kind``: ``approval``, or ``interrupted``)."""
    run = session.run
    step.status = StepStatus.AWAITING_APPROVAL
    session.save_step(step, "status", "tool")
    _park(session)
    _open_review(
        session,
        step,
        "agent.approval.requested",
        {"tool": tool.name, "reason": reason, "risk": tool.risk},
        kind=ReviewKind.TOOL_APPROVAL,
        subject_label=f"{tool.name} in run {str(run.pk)[:8]} of {run.agent.slug}",
        reason=reason,
        risk=tool.risk,
        payload={**payload(run, step, tool, step.arguments or {}), "question": kind},
        approvals_required=2 if tool.risk == Risk.CRITICAL else 1,
    )


def park_overrun(
    session: Session, budget: str, reason: str, *, used: str, limit: Any, extension: Any, asked: str
) -> None:
    """Ask a person whether the run may have ``extension`` more of ``budget``."""
    run = session.run
    detail = {"budget": budget, "extension": extension, "reason": reason, "text": asked}
    step = session.add_step(StepKind.APPROVAL, StepStatus.AWAITING_APPROVAL, detail=detail)
    _park(session)
    shown = {"run": str(run.pk), "agent": run.agent.slug, "version": run.version.number, "budget": budget}
    _open_review(
        session,
        step,
        "agent.budget.overrun",
        {"budget": budget, "reason": reason, "extension": extension},
        kind=ReviewKind.BUDGET_OVERRUN,
        subject_label=f"{budget} budget of run {str(run.pk)[:8]} of {run.agent.slug}",
        reason=asked[0].upper() + asked[1:] + ".",
        risk=Risk.MEDIUM,
        payload={**shown, "limit": limit, "used": used, "extension": extension, "question": "budget_overrun"},
    )
