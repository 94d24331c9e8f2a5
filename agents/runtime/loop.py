"""The loop: ``advance(run_id, owner)`` claims a run and advances it until it finishes, parks for a person, or its
lease is lost.

Each turn *decides* the next step in memory (``decide``: a cancellation, the wall time, a tool call to recover or
to authorize, the input guardrails and memory before the first model call, else the next model call), commits
what it decided in one transaction (``Session.commit``), then *performs* the slow part with no transaction open (a
model call, a tool call) and records its outcome, deciding the step after it in the same turn. A read tool's call
is performed before its turn commits, so the model's reply, the call and its result share one transaction. Should
deciding fail after an outcome was recorded, the outcome is committed alone and the error raised: a tool's result
is never lost. A crash between any two transactions loses nothing: the sweeper re-enqueues a run whose lease
expired, and the next ``advance()`` resumes from the last committed step.

A warm shutdown (``stop_after_this_step``, on SIGTERM) lets the call in hand finish and be recorded, and starts
nothing new (no write committed as ``executing``, no read, no model call): the run is handed back, its lease let go
and the run queued for the next worker.
"""

import threading
from collections.abc import Callable
from typing import Any

from agents.models import RunStatus, Step, StepKind, StepStatus
from agents.runtime import approvals, authorize, budget, checkpoints, conversation, lease, model_call, tool_call
from agents.runtime.plan import HAND_BACK, STOP, Plan
from agents.runtime.session import IDS_RESERVED, LeaseLost, Session

PENDING = (StepStatus.EXECUTING, StepStatus.PROPOSED)
_stopping = threading.Event()


def stop_after_this_step() -> None:
    """Ask every ``advance()`` of this process to stop after the step in hand (a warm shutdown)."""
    _stopping.set()


def stopping() -> bool:
    return _stopping.is_set()


def advance(run_id: Any, owner: str) -> None:
    """Claim the run and advance it until it finishes, parks for a person, or its lease is lost."""
    claimed = lease.claim(run_id, owner, reserve=IDS_RESERVED)
    if claimed is None:
        return
    session = Session.load(claimed, owner)
    heartbeat = lease.Heartbeat(run_id, owner)
    try:
        plan = _turn(session, _first)
        while plan.kind not in ("stop", "hand_back"):
            plan = _perform(session, plan, heartbeat)
        if plan.kind == "hand_back":
            lease.hand_back(session)
    except LeaseLost:
        return


def _perform(session: Session, plan: Plan, heartbeat: lease.Heartbeat) -> Plan:
    """Make the call ``plan`` asks for, then record its outcome and decide what comes next."""
    if plan.kind == "llm":
        with heartbeat.during_call():
            reply = model_call.call(session.run, session.ctx, plan)
        return _turn(session, lambda s: model_call.record(s, reply, then=_then_decide), may_defer=True)
    step = plan.step
    assert step is not None
    with heartbeat.during_call():
        result, failure = tool_call.perform(session, step)
    return _turn(session, lambda s: tool_call.record(s, step, result, failure, then=_then_decide))


def _turn(session: Session, work: Callable[[Session], Plan], *, may_defer: bool = False) -> Plan:
    """Decide with ``work`` and commit it; a read tool's call that ``work`` started after the model's reply is
    committed with its outcome instead (``may_defer``). A cancellation the commit took in is acted on at once."""
    plan = session.decide(work)
    if session.dirty and not (plan.deferred and may_defer):
        session.commit()
        if session.run.cancel_requested and plan.kind == "llm":
            return _turn(session, decide)
    return plan


def _first(session: Session) -> Plan:
    """The first decision of an ``advance()``: a run claimed too often without progress is dead-lettered."""
    dead = lease.dead_letter(session.run.deliveries)
    if not dead:
        return decide(session)
    session.error_step(dead)
    session.finish(RunStatus.FAILED, error="The run was picked up too often without progress (dead letter).")
    return STOP


def _then_decide(session: Session) -> Plan:
    """Decide after an outcome was recorded; should that fail, commit the outcome alone, then raise."""
    mark = session.mark()
    try:
        return decide(session)
    except Exception:
        session.restore(mark)
        session.commit()
        raise


def decide(session: Session) -> Plan:
    """The next step; a tool call denied is recorded and the step after it decided in the same turn. Once a warm
    shutdown was asked for, nothing new is started: what was recorded is committed and the run handed back."""
    if _stopping.is_set():
        return HAND_BACK
    while True:
        plan = _decide_once(session)
        if plan.kind != "next":
            return plan


def _decide_once(session: Session) -> Plan:
    run, ctx = session.run, session.ctx
    if run.cancel_requested:
        session.finish(RunStatus.CANCELLED, error="Cancelled on request.")
        return STOP
    overrun = budget.over_time(run, ctx)
    if overrun is not None:
        return budget.stop(session, overrun, before="its next step")
    step = _pending(session.steps)
    if step is not None and step.status == StepStatus.EXECUTING:
        return tool_call.recover(session, step)
    if step is not None:
        return _authorized(session, step)
    if _no_model_call_yet(session.steps):
        if checkpoints.input_stops(session):
            return STOP
        conversation.recall(session)
    plan, overrun = model_call.next_call(session)
    return plan if overrun is None else budget.stop(session, overrun, before="a model call")


def _authorized(session: Session, step: Step) -> Plan:
    verdict = authorize.verdict(session, step)
    if verdict.effect == "deny":
        return tool_call.deny(session, step, verdict.reason, detail=verdict.detail)
    if verdict.effect == "park":
        approvals.park_call(session, step, session.ctx.tools[step.detail["tool_name"]], verdict.reason)
        return STOP
    return tool_call.start(session, step)


def _pending(steps: list[Step]) -> Step | None:
    """The first tool call still to be decided (proposed) or left ``executing`` (its worker died)."""
    return next((step for step in steps if step.kind == StepKind.TOOL_CALL and step.status in PENDING), None)


def _no_model_call_yet(steps: list[Step]) -> bool:
    """No model call, guardrail or memory step yet: the input guardrails are still to be run, and memory recalled."""
    return not any(step.kind in (StepKind.LLM_CALL, StepKind.GUARDRAIL, StepKind.MEMORY) for step in steps)
