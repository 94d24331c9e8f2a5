"""A run's budgets: steps, tokens, cost and wall time, checked before each model and tool call.

A call that would exceed a budget is not made: the run fails (ends ``timed_out`` for wall time), or, when the
agent's escalation policy says ``review``, waits for a person, who may grant that budget once more (a budget of 0
cannot be granted again: it fails). The time a run waited for people does not count against its wall time.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from agents.models import Run, RunStatus
from agents.runtime import approvals
from agents.runtime.plan import STOP, Plan
from agents.runtime.session import Context, Session


@dataclass(frozen=True)
class Overrun:
    """A budget the next call would exceed (or, for wall time, has run out)."""

    budget: str  # steps | tokens | cost | wall_seconds
    used: str
    reason: str


def cost(ctx: Context, input_tokens: int, output_tokens: int) -> Decimal:
    pricing = ctx.spec["model"].get("pricing") or {}
    spent = input_tokens / 1000 * pricing.get("input_per_1k", 0) + output_tokens / 1000 * pricing.get(
        "output_per_1k", 0
    )
    return Decimal(str(round(spent, 6)))


def problem(run: Run, ctx: Context, *, tokens: int = 0, cost: Decimal = Decimal(0)) -> Overrun | None:
    """The budget one more step of ``tokens`` and ``cost`` would exceed, if any."""
    budgets = ctx.budgets
    if run.steps_used + 1 > budgets["steps"]:
        return Overrun("steps", str(run.steps_used), f"the step budget ({budgets['steps']}) would be exceeded")
    if "tokens" in budgets and run.tokens_used + tokens > budgets["tokens"]:
        reason = f"the token budget ({budgets['tokens']}) would be exceeded: {run.tokens_used} used, ~{tokens} more"
        return Overrun("tokens", str(run.tokens_used), reason)
    if "cost" in budgets and run.cost_used + cost > Decimal(str(budgets["cost"])):
        reason = f"the cost budget ({budgets['cost']}) would be exceeded: {run.cost_used} used, ~{cost} more"
        return Overrun("cost", str(run.cost_used), reason)
    return None


def over_time(run: Run, ctx: Context) -> Overrun | None:
    """Over the wall-time budget: time since the run started, less the time it waited for people."""
    limit = ctx.budgets.get("wall_seconds")
    if not limit or run.started_at is None:
        return None
    spent = (timezone.now() - run.started_at).total_seconds() - run.waited_seconds
    if spent <= limit:
        return None
    return Overrun("wall_seconds", f"{spent:.0f}", f"the wall-time budget ({limit:g} s) ran out")


def stop(session: Session, overrun: Overrun, *, before: str) -> Plan:
    """Stop before a call that would exceed a budget: fail, or wait for a person (see the module docstring)."""
    extension = session.ctx.spec["budgets"][overrun.budget]
    if session.ctx.reviews_overruns and extension:
        asked = f"{overrun.reason}, before {before}: approving grants {extension:g} more"
        limit = session.ctx.budgets[overrun.budget]
        approvals.park_overrun(
            session, overrun.budget, overrun.reason, used=overrun.used, limit=limit, extension=extension, asked=asked
        )
        return STOP
    if overrun.budget == "wall_seconds":
        session.error_step(overrun.reason)
        session.finish(RunStatus.TIMED_OUT, error="The wall-time budget ran out.")
    else:
        session.error_step(f"stopped before {before}: {overrun.reason}")
        session.finish(RunStatus.FAILED, error=f"Budget: {overrun.reason}.")
    return STOP
