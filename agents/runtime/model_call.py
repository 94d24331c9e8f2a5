"""A model call: planned with the conversation and the tools (and the budgets it would exceed), made with no
transaction open (retrying retryable errors with backoff, within the wall-time budget), and its reply recorded:
proposed tool calls, the answer, a reply refused as it came (``agents.replies``), or the error that fails the run.
"""

import json
import time
from collections.abc import Callable
from decimal import Decimal

from agents import providers, replies
from agents.models import Run, RunStatus, StepKind, StepStatus
from agents.runtime import budget, checkpoints, conversation
from agents.runtime.plan import STOP, Plan
from agents.runtime.session import Context, Session
from audit.services import audit_record

Outcome = providers.Completion | providers.ReplyRefused | str


def next_call(session: Session) -> tuple[Plan, budget.Overrun | None]:
    """The next model call, and the budget it would exceed, if any."""
    ctx = session.ctx
    said = conversation.messages(ctx.spec, session.run.input, session.steps)
    parameters = ctx.spec["model"].get("parameters") or {}
    tokens = providers.estimate_tokens(json.dumps(said)) + int(parameters.get("max_tokens", 0) or 0)
    llm = Plan("llm", messages=tuple(said), tools=tuple(conversation.tool_schemas(session)))
    return llm, budget.problem(session.run, ctx, tokens=tokens, cost=budget.cost(ctx, tokens, 0))


def call(run: Run, ctx: Context, plan: Plan) -> Outcome:
    """The model's answer; a reply refused as it came; or the error (after the retries the model allows)."""
    model = ctx.spec["model"]
    provider = providers.get_provider(model["provider"])
    attempts = 1 + int(model.get("max_retries", 3))
    delay, error, attempt = 0.5, "", 0
    for attempt in range(attempts):
        try:
            return provider.complete(
                model=model,
                messages=list(plan.messages),
                tools=list(plan.tools),
                timeout=float(model.get("timeout_seconds", 60)),
                script=ctx.spec.get("script") or [],
            )
        except providers.ReplyRefused as refused:
            return refused  # recorded, and the model told on its next call (see ``conversation.messages``)
        except providers.ProviderError as failure:
            error = str(failure)
            if not failure.retryable or attempt == attempts - 1 or budget.over_time(run, ctx) is not None:
                break
            time.sleep(delay)
            delay = min(delay * 2, 30)
    return f"{model['provider']} model {model['name']!r} failed after {attempt + 1} attempt(s): {error}"


def record(session: Session, outcome: Outcome, then: Callable[[Session], Plan]) -> Plan:
    """Record the model's answer: its proposed tool calls (then ``then`` plans the first), or the run's answer."""
    if isinstance(outcome, str):
        session.error_step(outcome)
        session.finish(RunStatus.FAILED, error=outcome)
        return STOP
    if isinstance(outcome, providers.ReplyRefused):
        return _record_refusal(session, outcome, then)
    ctx = session.ctx
    tokens = outcome.input_tokens + outcome.output_tokens
    cost = budget.cost(ctx, outcome.input_tokens, outcome.output_tokens)
    detail = {"message": outcome.message, "input_tokens": outcome.input_tokens, "output_tokens": outcome.output_tokens}
    llm = session.add_step(StepKind.LLM_CALL, StepStatus.SUCCEEDED, tokens=tokens, cost=cost, detail=detail)
    for proposed in outcome.tool_calls:
        session.add_step(
            StepKind.TOOL_CALL,
            StepStatus.PROPOSED,
            call_id=proposed.id,
            arguments=proposed.arguments,
            detail={"tool_name": proposed.name, "raw_arguments": proposed.raw_arguments[:4000]},
        )
    _spent(session, tokens, cost)
    details = {"tokens": tokens, "cost": str(cost), "tool_calls": [proposed.name for proposed in outcome.tool_calls]}
    audit_record(actor=session.actor, action="agent.model.called", target=llm, details=details)
    session.progress()
    if not outcome.tool_calls:
        checkpoints.answer(session, outcome.text)
        return STOP
    return then(session)


def _spent(session: Session, tokens: int, cost: Decimal) -> None:
    run = session.run
    run.steps_used, run.tokens_used, run.cost_used = run.steps_used + 1, run.tokens_used + tokens, run.cost_used + cost
    session.save_run("steps_used", "tokens_used", "cost_used")


def _record_refusal(session: Session, refused: providers.ReplyRefused, then: Callable[[Session], Plan]) -> Plan:
    """A reply nothing may act on: a failed ``llm_call`` step saying why, nothing of it done, the model told on its
    next call, within the run's budgets. The run fails once more replies in a row were refused than the model's
    ``max_retries``."""
    tokens = refused.input_tokens + refused.output_tokens
    cost = budget.cost(session.ctx, refused.input_tokens, refused.output_tokens)
    detail = {"reply": refused.excerpt, "input_tokens": refused.input_tokens, "output_tokens": refused.output_tokens}
    error = f"reply refused: {refused}"
    step = session.add_step(StepKind.LLM_CALL, StepStatus.FAILED, tokens=tokens, cost=cost, detail=detail, error=error)
    _spent(session, tokens, cost)
    details = {"reason": str(refused), "tokens": tokens, "cost": str(cost)}
    audit_record(actor=session.actor, action="agent.model.refused", target=step, details=details)
    session.progress()
    model = session.ctx.spec["model"]
    in_a_row = replies.refused_in_a_row([s.status for s in session.steps if s.kind == StepKind.LLM_CALL])
    if in_a_row > int(model.get("max_retries", 3)):
        label = f"{model['provider']} model {model['name']!r}"
        failed = f"{label}: {in_a_row} replies in a row were refused; the last: {refused}"
        session.error_step(failed)
        session.finish(RunStatus.FAILED, error=failed)
        return STOP
    return then(session)
