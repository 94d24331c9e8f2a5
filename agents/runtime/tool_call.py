"""A tool call: started (budget checked, ``executing`` with its idempotency key), performed with no transaction
open as the pinned version defines it, its outcome recorded; and the recovery of a call its worker died in.

A call with side effects is committed as ``executing`` before it runs, so that a worker that dies during it leaves
a trace: an idempotent tool is then called again with the same key, a non-idempotent one goes to a person, who
decides whether to call it again. A read (no side effect, and no rate limit counting its calls) is performed
before anything is committed and its outcome committed with the model's reply that asked for it: repeating it after
a crash is harmless, and it saves a transaction.
"""

import inspect
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from agents import http_tools, tool_versions, tools
from agents.models import SideEffect, Step, StepStatus, Tool, ToolKind
from agents.runtime import approvals, budget
from agents.runtime.plan import NEXT, STOP, Plan
from agents.runtime.session import Session
from audit.services import audit_record


def deny(session: Session, step: Step, reason: str, *, detail: dict[str, Any] | None = None) -> Plan:
    """Refuse the call ``step``: the model is told why on its next call."""
    step.status, step.error, step.finished_at = StepStatus.DENIED, reason, timezone.now()
    step.detail = {**step.detail, **(detail or {})}
    session.save_step(step, "status", "error", "finished_at", "detail", "tool")
    details = {"tool": step.detail.get("tool_name", ""), "reason": reason}
    audit_record(actor=session.actor, action="agent.tool.denied", target=step, details=details)
    session.progress()
    return NEXT


def start(session: Session, step: Step) -> Plan:
    """Start the allowed call ``step``, unless it would exceed a budget."""
    run, ctx = session.run, session.ctx
    overrun = budget.problem(run, ctx)
    if overrun is not None:
        if not ctx.reviews_overruns:  # else the call stays proposed, checked again if the run goes on
            step.status, step.error, step.finished_at = (
                StepStatus.DENIED,
                f"not called: {overrun.reason}",
                timezone.now(),
            )
            session.save_step(step, "status", "error", "finished_at", "tool")
        return budget.stop(session, overrun, before="a tool call")
    assert step.tool is not None
    name = step.tool.name
    step.status, step.idempotency_key, step.started_at = StepStatus.EXECUTING, f"{run.pk}:{step.seq}", timezone.now()
    session.save_step(step, "status", "idempotency_key", "started_at", "tool")
    run.steps_used += 1
    session.save_run("steps_used")
    details = {"tool": name, "arguments": step.arguments, "idempotency_key": step.idempotency_key}
    audit_record(actor=session.actor, action="agent.tool.executing", target=step, details=details)
    read = ctx.tools[name].side_effect == SideEffect.READ and not ctx.grants[name].get("rate_limit")
    return Plan("tool", step=step, deferred=read)


def recover(session: Session, step: Step) -> Plan:
    """A step left ``executing``: its worker died during the call (see the module docstring)."""
    assert step.tool is not None
    name = step.tool.name
    retried = {"tool": name, "idempotency_key": step.idempotency_key}
    if step.detail.get("retry_approved"):
        step.detail = {**step.detail, "retry_approved": False}
        session.save_step(step, "detail")
        audit_record(
            actor=session.actor, action="agent.tool.retried", target=step, details={**retried, "approved": True}
        )
        return Plan("tool", step=step)
    pinned = session.ctx.tools.get(name)
    if pinned is None:
        return deny(session, step, f"not called again: the agent version pins no version of {name!r}")
    if pinned.idempotent:
        audit_record(actor=session.actor, action="agent.tool.retried", target=step, details=retried)
        return Plan("tool", step=step)
    reason = (
        f"A worker stopped while {name} (not idempotent) was running: it may or may not have happened. "
        "Approve to call it again, reject to give up on it."
    )
    approvals.park_call(session, step, pinned, reason, kind="interrupted")
    return STOP


def execute(tool: Tool, pinned: tool_versions.ToolDefinition, arguments: dict[str, Any], idempotency_key: str) -> Any:
    """Run a tool as the version ``pinned`` defines it; ``ToolFailure`` with the reason when it cannot be run or does
    not succeed."""
    tools.validate_arguments(pinned.parameters, arguments)
    if pinned.kind != tool.kind:
        raise tools.ToolFailure(f"{tool.name} is no longer a {pinned.kind} tool, as its version {pinned.version} was")
    timeout = pinned.timeout_seconds
    if tool.kind == ToolKind.HTTP:
        secrets = tool_versions.secret_headers(tool, pinned.secret_headers)
        return tools.call_with_timeout(lambda: http_tools.call(pinned, secrets, arguments, timeout), {}, timeout + 1)
    spec = tools.registered().get(tool.name)
    if spec is None:
        raise tools.ToolFailure(f"the tool {tool.name!r} has no implementation in this installation")
    call_arguments = dict(arguments)
    if tools.IDEMPOTENCY_KEY in inspect.signature(spec.function).parameters:
        call_arguments[tools.IDEMPOTENCY_KEY] = idempotency_key
    return tools.call_with_timeout(spec.function, call_arguments, timeout)


def perform(session: Session, step: Step) -> tuple[Any, str]:
    """Call the tool of ``step``: its result and "", or None and why it failed."""
    assert step.tool is not None
    try:
        pinned = session.ctx.tools[step.tool.name]
        return execute(step.tool, pinned, step.arguments or {}, step.idempotency_key), ""
    except tools.ToolFailure as error:
        return None, str(error)


def record(session: Session, step: Step, result: Any, failure: str, then: Callable[[Session], Plan]) -> Plan:
    """Record the call's outcome, then plan the next step (``then``)."""
    step.status = StepStatus.FAILED if failure else StepStatus.SUCCEEDED
    step.result, step.error, step.finished_at = (None if failure else result), failure, timezone.now()
    session.save_step(step, "status", "result", "error", "finished_at")
    details = {"tool": step.tool.name if step.tool else "", "error": failure, "duration_ms": step.duration_ms}
    audit_record(actor=session.actor, action=f"agent.tool.{step.status}", target=step, details=details)
    session.progress()
    return then(session)
