"""A proposed tool call's verdict: ``run`` it, ``deny`` it (the model is told why), or ``park`` it for a person.

The checks, in order, each small and each saying why it refuses: the arguments are a JSON object; the agent has a
grant for the tool, the tool is available and its version pinned, the grant has not expired; the arguments fit the
pinned schema; the grant's constraints hold (``constraint_problem``, which approvals of edited arguments use too);
the grant's rate limit is not used up; an ``observe`` agent calls no write tool; the ``action`` guardrails do not
deny (they may mask personal data in the arguments). Then what asks for a person: a guardrail that requires
approval or escalates, a ``propose`` agent's write, a ``supervised`` agent's high- or critical-risk write, and the
grant's approval mode (``always``, or a condition that holds). A condition that cannot be evaluated denies, or asks
for a person: fail-safe.
"""

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from agents import tools
from agents.models import Step, StepKind, StepStatus
from agents.runtime import facts
from agents.runtime.session import Session
from agents.spec import parse_expiry
from agents.tool_versions import ToolDefinition
from governance import detectors
from governance.guardrails import guardrail_check
from governance.models import Risk
from governance.policies import ConditionError, ConditionRuntimeError, Decision, compile_condition

RISKY = (Risk.HIGH, Risk.CRITICAL)
COUNTED = (StepStatus.EXECUTING, StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.COMPENSATED)


@dataclass(frozen=True)
class Verdict:
    effect: str  # "run" | "deny" | "park"
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)  # "deny": added to the step's detail


RUN = Verdict("run")


def constraint_problem(grant: dict[str, Any], call_facts: dict[str, Any]) -> str:
    """Why the grant's constraints refuse a call with these facts (``facts.call``), or "" when they all hold."""
    for constraint in grant.get("constraints") or []:
        try:
            holds = compile_condition(constraint).evaluate(call_facts)
        except (ConditionError, ConditionRuntimeError) as error:
            return f"the constraint {constraint!r} could not be checked ({error}): denied (fail-safe)"
        if not holds:
            return f"the arguments break the constraint {constraint!r}"
    return ""


def verdict(session: Session, step: Step) -> Verdict:
    """The verdict on the proposed call ``step``; the tool row is set on it, and masked arguments saved."""
    if step.detail.get("approved"):
        return RUN
    name = step.detail.get("tool_name", "")
    grant, tool = session.ctx.grants.get(name), session.ctx.tools.get(name)
    refused = _not_allowed(session, step, name, grant, tool)
    if refused:
        return Verdict("deny", refused)
    assert grant is not None
    assert tool is not None
    step.tool = session.tools[name]
    session.save_step(step, "tool")
    problem = _argument_problem(session, step, grant, tool)
    if problem:
        return Verdict("deny", problem)
    decision = _guardrails(session, step, tool)
    if decision.effect == "deny":
        return Verdict("deny", "denied by policy: " + "; ".join(decision.reasons), {"guardrail": decision.as_dict()})
    if decision.redact:
        problem = _mask(session, step, tool, decision.redact)
        if problem:
            return Verdict("deny", problem)
    reasons = _approval_reasons(session, step, grant, tool, decision)
    return Verdict("park", "; ".join(reasons)) if reasons else RUN


def _not_allowed(
    session: Session, step: Step, name: str, grant: dict[str, Any] | None, tool: ToolDefinition | None
) -> str:
    if step.arguments is None:
        return f"the arguments were not a JSON object: {step.detail.get('raw_arguments', '')[:500]}"
    if grant is None or name not in session.tools:
        return f"the agent has no grant for the tool {name!r}"
    if tool is None:
        return f"the agent version pins no version of {name!r}: submit it again to pin one"
    expiry = parse_expiry(grant["expires_at"]) if "expires_at" in grant else None
    if expiry is not None and expiry <= timezone.now():
        return f"the grant for {name!r} expired at {expiry.isoformat()}"
    return ""


def _argument_problem(session: Session, step: Step, grant: dict[str, Any], tool: ToolDefinition) -> str:
    """Schema, constraints, rate limit and autonomy, in that order."""
    arguments = step.arguments or {}
    try:
        tools.validate_arguments(tool.parameters, arguments)
    except tools.ToolFailure as failure:
        return str(failure)
    problem = constraint_problem(grant, facts.call(session.run, tool, arguments))
    if problem:
        return problem
    limit = grant.get("rate_limit")
    if limit and _calls_within(session, step, limit["per_seconds"]) >= limit["calls"]:
        return f"the rate limit of {limit['calls']} calls per {limit['per_seconds']} s is used up"
    if session.ctx.spec["autonomy"] == "observe" and tool.side_effect == "write":
        return "the agent only observes: write tools are not allowed"
    return ""


def _calls_within(session: Session, step: Step, seconds: float) -> int:
    """The agent's calls of the step's tool in the last ``seconds`` (this one left out)."""
    since = timezone.now() - dt.timedelta(seconds=seconds)
    calls = Step.objects.filter(run__agent_id=session.run.agent_id, tool=step.tool, kind=StepKind.TOOL_CALL)
    calls = calls.filter(started_at__gte=since, status__in=COUNTED)
    return (calls.exclude(pk=step.pk) if step.pk else calls).count()


def _guardrails(session: Session, step: Step, tool: ToolDefinition) -> Decision:
    ctx = session.ctx
    action_facts = facts.action(session.run, tool, step.arguments or {}, ctx.spec["autonomy"], ctx.budgets)
    return guardrail_check(
        checkpoint="action", facts=action_facts, policy_refs=ctx.policies, actor=session.actor, target=step
    )


def masked(value: Any, kinds: Sequence[str]) -> Any:
    """``value`` with the personal data of ``kinds`` masked in every string in it (``[EMAIL]``, ...)."""
    if isinstance(value, str):
        return detectors.redact(value, detectors.detect(value, kinds), kinds)
    if isinstance(value, list):
        return [masked(item, kinds) for item in value]
    if isinstance(value, dict):
        return {key: masked(item, kinds) for key, item in value.items()}
    return value


def _mask(session: Session, step: Step, tool: ToolDefinition, kinds: Sequence[str]) -> str:
    """Mask what the guardrails said in the arguments: what the tool gets, the approver sees and the trail records.
    Why the masked arguments cannot be used, or ""."""
    hidden = masked(step.arguments, kinds)
    if hidden == step.arguments:
        return ""
    step.arguments = hidden
    step.detail = {
        **step.detail,
        "raw_arguments": json.dumps(hidden, ensure_ascii=False)[:4000],
        "redacted": list(kinds),
    }
    session.save_step(step, "arguments", "detail")
    try:
        tools.validate_arguments(tool.parameters, hidden)
    except tools.ToolFailure as failure:
        return f"once masked by policy, the arguments no longer fit the tool: {failure}"
    return ""


def _approval_reasons(
    session: Session, step: Step, grant: dict[str, Any], tool: ToolDefinition, decision: Decision
) -> list[str]:
    reasons: list[str] = []
    autonomy = session.ctx.spec["autonomy"]
    if decision.effect in ("require_approval", "escalate"):
        reasons.append("policy: " + "; ".join(decision.reasons))
    if autonomy == "propose" and tool.side_effect == "write":
        reasons.append("the agent proposes: every write needs approval")
    if autonomy == "supervised" and tool.side_effect == "write" and tool.risk in RISKY:
        reasons.append(f"supervised agent, {tool.risk}-risk write")
    approval = grant.get("approval", "never")
    if approval == "always":
        reasons.append(f"the grant for {tool.name!r} always needs approval")
    elif isinstance(approval, dict):
        condition = approval["when"]
        try:
            if compile_condition(condition).evaluate(facts.call(session.run, tool, step.arguments or {})):
                reasons.append(f"the grant's condition {condition!r} holds")
        except (ConditionError, ConditionRuntimeError) as error:
            reasons.append(f"the grant's condition {condition!r} could not be checked ({error}): fail-safe")
    return reasons
