"""A finished run's outcome (``completed``, ``not_completed``, ``escalated``): what it achieved, apart from how it
ended (its status). Pure functions over what the run's steps record and over the agent's own report; the runtime
calls ``decide`` in the transaction that finishes the run. ``docs/metrics.md`` states the same rules.

- A run that was **rolled back** (every write undone) is ``not_completed``.
- A run is ``escalated``, whatever its status, when it ended handing over to a person: a budget overrun went to
  review and was not granted (rejected or expired), a tool call's approval expired before anyone decided, or an
  ``input`` or ``output`` guardrail decided ``escalate``; or when its own report says so.
- A run that ended **failed, cancelled or timed out** otherwise is ``not_completed``, with its error.
- A **succeeded** run is ``completed`` when at least one write succeeded (or, with no write attempted, at least
  one tool call succeeded with a result that is not an error, and it answered), and no call that failed or was
  denied was left without a later successful call of the same tool. Otherwise ``not_completed``: every write was
  denied, rejected or failed; every tool call failed; nothing was done at all; or an attempt was left unresolved.

**A tool result is an error** when the call failed (the tool raised, timed out, answered an HTTP status of 400 or
more, or returned something that is not JSON: the step is ``failed``), was denied (``denied``), or succeeded with a
JSON object whose ``error`` key is not empty (``result_error``): the same ``{"error": ...}`` the model is shown for
a failed call, so a tool may also say "not found" by returning it.

**The agent's report.** When the final answer is a JSON object with an ``outcome`` of the three values (and
optionally a ``reason``), it is taken into account: ``escalated`` and ``not_completed`` are taken as they are, and
``completed`` never upgrades a run the record says did nothing: the record wins.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agents.models import Run, RunOutcome, RunStatus, Step, StepKind, StepStatus
from governance.models import ReviewStatus

REASON_LENGTH = Run._meta.get_field("outcome_reason").max_length or 500
ROLLED_BACK = "every write it made was undone (rolled back)"


@dataclass(frozen=True)
class Outcome:
    outcome: str  # a RunOutcome value
    reason: str

    def as_details(self) -> dict[str, str]:
        """As the run's finished event records it."""
        return {"outcome": self.outcome, "outcome_reason": self.reason}


@dataclass(frozen=True)
class StepFacts:
    """What the outcome rules read of one step (``facts_of`` makes them of a ``Step``)."""

    kind: str
    status: str
    tool: str = ""
    write: bool = False
    error: str = ""
    result: Any = None
    detail: dict[str, Any] | None = None
    review_status: str = ""  # the status of the review item the step waited for, if any
    compensates: bool = False  # an undo step of a compensation


@dataclass(frozen=True)
class Report:
    """The agent's own word on what it achieved: its final answer as ``{"outcome": ..., "reason": ...}``."""

    outcome: str
    reason: str


def result_error(result: Any) -> str:
    """The error a succeeded tool call's result reports (a JSON object with a non-empty ``error``), or ""."""
    if isinstance(result, dict) and result.get("error"):
        error = result["error"]
        return error if isinstance(error, str) else json.dumps(error, ensure_ascii=False)
    return ""


def report_of(answer: str | None) -> Report | None:
    """The agent's report when its answer is a JSON object with a known ``outcome``; None otherwise."""
    if not answer or not answer.lstrip().startswith("{"):
        return None
    try:
        parsed = json.loads(answer)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or parsed.get("outcome") not in RunOutcome.values:
        return None
    reason = parsed.get("reason")
    return Report(outcome=parsed["outcome"], reason=reason.strip() if isinstance(reason, str) else "")


def decide(*, status: str, steps: Iterable[StepFacts], answer: str | None = None, error: str = "") -> Outcome:
    """The outcome of a run that ended with ``status``, from its steps, its answer and its error."""
    steps = list(steps)
    if status == RunStatus.ROLLED_BACK:
        return _outcome(RunOutcome.NOT_COMPLETED, ROLLED_BACK)
    handovers = _handovers(steps)
    if handovers:
        return _outcome(RunOutcome.ESCALATED, "; ".join(handovers))
    if status != RunStatus.SUCCEEDED:
        return _outcome(RunOutcome.NOT_COMPLETED, f"the run ended {RunStatus(status).label}: {error or 'no reason'}")
    return _with_report(_from_record(steps, answer or ""), report_of(answer))


def _outcome(outcome: str, reason: str) -> Outcome:
    return Outcome(
        outcome=outcome, reason=reason if len(reason) <= REASON_LENGTH else reason[: REASON_LENGTH - 1] + "…"
    )


def _handovers(steps: list[StepFacts]) -> list[str]:
    """Why the run was left to a person who did not take it on: each budget overrun not granted, each approval
    that expired, each guardrail that escalated."""
    found = []
    for step in steps:
        if step.kind == StepKind.APPROVAL and step.status == StepStatus.DENIED:
            budget = (step.detail or {}).get("budget", "")
            found.append(f"the {budget} budget overrun went to a person and was not granted: {step.error}")
        elif step.kind == StepKind.TOOL_CALL and step.review_status == ReviewStatus.EXPIRED and not step.compensates:
            found.append(f"the approval of {step.tool} expired before anyone decided")
        elif step.kind == StepKind.GUARDRAIL and (step.detail or {}).get("effect") == "escalate":
            checkpoint = (step.detail or {}).get("checkpoint", "")
            found.append(f"the {checkpoint} guardrails escalated: {step.error}".replace("  ", " "))
    return found


def _failure(step: StepFacts) -> str:
    """How a tool call went wrong, as "<tool> (<reason>)" with the verb; "" when it succeeded."""
    if step.status in (StepStatus.SUCCEEDED, StepStatus.COMPENSATED):
        error = result_error(step.result)
        return f"{step.tool} returned an error ({error})" if error else ""
    verb = "was denied" if step.status == StepStatus.DENIED else "failed"
    return f"{step.tool} {verb} ({step.error or 'no reason'})"


def _unresolved(calls: list[StepFacts]) -> list[str]:
    """The calls that went wrong with no later successful call of the same tool."""
    left = []
    for index, call in enumerate(calls):
        failure = _failure(call)
        if failure and not any(later.tool == call.tool and not _failure(later) for later in calls[index + 1 :]):
            left.append(failure)
    return left


def _all_failed(kind: str, failures: list[str]) -> Outcome:
    return _outcome(RunOutcome.NOT_COMPLETED, f"every {kind} went wrong: " + "; ".join(failures))


def _from_record(steps: list[StepFacts], answer: str) -> Outcome:
    """A succeeded run's outcome from what its tool calls did (see the module docstring)."""
    calls = [step for step in steps if step.kind == StepKind.TOOL_CALL and not step.compensates]
    if not calls:
        return _outcome(RunOutcome.NOT_COMPLETED, "the run called no tool: nothing was done")
    writes = [call for call in calls if call.write]
    done = [call.tool for call in (writes or calls) if not _failure(call)]
    if not done:
        return _all_failed("write" if writes else "tool call", [_failure(call) for call in writes or calls])
    if not writes and not answer.strip():
        return _outcome(RunOutcome.NOT_COMPLETED, "the run read but gave no answer")
    left = _unresolved(calls)
    if left:
        return _outcome(RunOutcome.NOT_COMPLETED, "left unresolved: " + "; ".join(left))
    names = ", ".join(dict.fromkeys(done))
    return _outcome(RunOutcome.COMPLETED, f"wrote with {names}" if writes else f"read with {names} and answered")


def _with_report(record: Outcome, report: Report | None) -> Outcome:
    """The record's outcome with the agent's report taken into account: it may say less was achieved, never more."""
    if report is None or report.outcome == record.outcome:
        return record
    if report.outcome == RunOutcome.COMPLETED:
        return _outcome(record.outcome, f"{record.reason} (the agent reported it completed: the record wins)")
    said = f": {report.reason}" if report.reason else ""
    if report.outcome == RunOutcome.ESCALATED:
        return _outcome(RunOutcome.ESCALATED, f"the agent reported it needs a person{said}")
    return _outcome(RunOutcome.NOT_COMPLETED, f"the agent reported it did not complete the task{said}")


def facts_of(step: Step, *, write: bool, expired: bool = False) -> StepFacts:
    """A step's facts; ``write``: it called a write tool; ``expired``: the review item it waited for expired."""
    return StepFacts(
        kind=step.kind,
        status=step.status,
        tool=step.detail.get("tool_name", "") or (step.tool.name if step.tool else ""),
        write=write,
        error=step.error,
        result=step.result,
        detail=step.detail,
        review_status=ReviewStatus.EXPIRED if expired else "",
        compensates=step.compensates_id is not None,
    )
