"""The agent runtime: advances a run one committed step at a time, under a lease.

``advance(run_id, owner)`` is what the Celery task calls. It claims the run's lease with a guarded update (0 rows:
someone else has it, or it is not runnable), then repeats: *plan* the next step inside a short transaction (the
lease is checked and renewed, the decision and any preparation are committed), *perform* the slow part with no
transaction open (a model call, a tool call), *record* the outcome in another short transaction. A crash between
any two of these loses nothing: the sweeper re-enqueues a run whose lease expired, and planning resumes from the
last committed step.

The loop, as DESIGN.md's reliability rules say: input guardrails; budget check; model call; for each tool call the
model proposed: grant, argument schema, argument constraints, rate limit, ``action`` guardrails, autonomy level
and the grant's approval mode → execute, deny (the model is told why), or park for approval (the run holds no
worker while it waits); output guardrails; finish. A tool with side effects is committed as ``executing`` with an
idempotency key before it runs; finding one still ``executing`` means a worker died during the call: an
idempotent tool is called again with the same key, a non-idempotent one goes to the review queue.
"""

import contextlib
import datetime as dt
import inspect
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.db.models import F, Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents import http_tools, providers, tools
from agents.models import Run, RunStatus, Step, StepKind, StepStatus, Tool, ToolKind
from agents.signals import run_finished
from agents.spec import parse_expiry
from audit.context import Actor, audit_context
from audit.services import audit_record
from governance import policies, selectors
from governance.guardrails import guardrail_check
from governance.models import ReviewKind, Risk
from governance.policies import ConditionError, ConditionRuntimeError, compile_condition
from governance.services import review_item_open

SETTLED = (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.DENIED, StepStatus.COMPENSATED)
RISKY = (Risk.HIGH, Risk.CRITICAL)


def run_actor(run: Run) -> Actor:
    return Actor(type="agent_run", id=str(run.pk), label=f"run {str(run.pk)[:8]} of {run.agent.slug}")


# --- leases -------------------------------------------------------------------------------------------------------


def claim(run_id: Any, owner: str) -> bool:
    """Take the run's lease if it is free or expired; a run claimed too often without progress is dead-lettered."""
    now = timezone.now()
    claimed = (
        Run.objects.filter(pk=run_id, status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(lease_owner=owner))
        .update(
            status=RunStatus.RUNNING,
            lease_owner=owner,
            lease_expires_at=now + dt.timedelta(seconds=settings.AGENTS_LEASE_SECONDS),
            deliveries=F("deliveries") + 1,
            started_at=Coalesce(F("started_at"), now),
            updated_at=now,
        )
    )
    if not claimed:
        return False
    claimed_run = Run.objects.select_related("agent").get(pk=run_id)
    if claimed_run.deliveries > settings.AGENTS_MAX_DELIVERIES:
        with (
            transaction.atomic(),
            audit_context(actor=run_actor(claimed_run), correlation_id=claimed_run.correlation_id),
        ):
            run = _locked(run_id, owner)
            if run is not None:
                _error_step(run, f"picked up {run.deliveries - 1} times without progress: dead letter")
                _finish(run, RunStatus.FAILED, error="The run was picked up too often without progress (dead letter).")
        return False
    return True


@contextlib.contextmanager
def _heartbeat(run_id: Any, owner: str) -> Iterator[None]:
    """Keep renewing the lease while a model or tool call runs outside any transaction, so a slow call is not
    taken for a dead worker. A killed worker stops beating and the lease expires as it should."""
    stop = threading.Event()
    lease = settings.AGENTS_LEASE_SECONDS

    def beat() -> None:
        try:
            while not stop.wait(max(1.0, lease / 3)):
                Run.objects.filter(pk=run_id, lease_owner=owner).update(
                    lease_expires_at=timezone.now() + dt.timedelta(seconds=lease)
                )
        finally:
            connections.close_all()

    thread = threading.Thread(target=beat, daemon=True, name="lease-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _locked(run_id: Any, owner: str) -> Run | None:
    """The run, locked, if ``owner`` still holds its lease (renewed); None when the lease was lost."""
    run = Run.objects.select_for_update(of=("self",)).select_related("agent", "version", "requested_by").get(pk=run_id)
    if run.lease_owner != owner or run.status != RunStatus.RUNNING:
        return None
    run.lease_expires_at = timezone.now() + dt.timedelta(seconds=settings.AGENTS_LEASE_SECONDS)
    run.save(update_fields=["lease_expires_at"])
    return run


def _release(run: Run, status: str) -> None:
    run.status, run.lease_owner, run.lease_expires_at, run.updated_at = status, "", None, timezone.now()
    run.save(update_fields=["status", "lease_owner", "lease_expires_at", "updated_at"])


def _finish(run: Run, status: str, *, result: Any = None, error: str = "") -> None:
    run.result, run.error, run.finished_at = result, error, timezone.now()
    run.save(update_fields=["result", "error", "finished_at"])
    _release(run, status)
    audit_record(
        actor=run_actor(run),
        action=f"agent.run.{status}",
        target=run,
        correlation_id=run.correlation_id,
        details={"error": error, "steps": run.steps_used, "tokens": run.tokens_used, "cost": str(run.cost_used)},
    )
    run_finished.send(sender=Run, run=run)


# --- steps --------------------------------------------------------------------------------------------------------


def _next_seq(run: Run) -> int:
    return (run.steps.aggregate(last=Max("seq"))["last"] or 0) + 1


def _add_step(run: Run, kind: str, status: str, **fields: Any) -> Step:
    now = timezone.now()
    return Step.objects.create(run=run, seq=_next_seq(run), kind=kind, status=status, started_at=now,
                               finished_at=None if status in (StepStatus.PROPOSED, StepStatus.EXECUTING) else now,
                               **fields)  # fmt: skip


def _error_step(run: Run, error: str) -> Step:
    return _add_step(run, StepKind.ERROR, StepStatus.FAILED, error=error)


def _progress(run: Run) -> None:
    """A step was committed: the run is making progress, so redeliveries start counting afresh."""
    run.deliveries, run.updated_at = 0, timezone.now()
    run.save(update_fields=["deliveries", "updated_at"])


# --- what the model sees ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    spec: dict[str, Any]
    policies: list[policies.PolicyRef]

    @property
    def grants(self) -> dict[str, dict[str, Any]]:
        return {grant["tool"]: grant for grant in self.spec.get("grants") or []}

    @property
    def budgets(self) -> dict[str, Any]:
        return dict(self.spec.get("budgets") or {})


def context(run: Run) -> Context:
    refs = [
        policies.PolicyRef(slug=slug, version=number, spec=policy)
        for slug, number, policy in selectors.frozen_versions([p["id"] for p in run.policy_versions])
    ]
    return Context(spec=run.version.spec, policies=refs)


def conversation(run: Run, ctx: Context) -> list[dict[str, Any]]:
    """The messages for the model, rebuilt from the committed steps."""
    run_input = run.input
    messages: list[dict[str, Any]] = [{"role": "system", "content": ctx.spec["instructions"]}]
    for step in run.steps.order_by("seq"):
        if step.kind == StepKind.GUARDRAIL and "input" in step.detail:
            run_input = step.detail["input"]
        elif step.kind == StepKind.LLM_CALL:
            if len(messages) == 1:
                messages.append({"role": "user", "content": json.dumps(run_input, ensure_ascii=False)})
            messages.append(step.detail["message"])
        elif step.kind == StepKind.TOOL_CALL and step.call_id and step.status in SETTLED:
            content = step.result if step.status == StepStatus.SUCCEEDED else {"error": step.error}
            messages.append({"role": "tool", "tool_call_id": step.call_id, "content": json.dumps(content)})
    if len(messages) == 1:
        messages.append({"role": "user", "content": json.dumps(run_input, ensure_ascii=False)})
    return messages


def _tool_schemas(ctx: Context) -> list[dict[str, Any]]:
    granted = Tool.objects.filter(name__in=list(ctx.grants), available=True).order_by("name")
    return [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in granted]


def _cost(ctx: Context, input_tokens: int, output_tokens: int) -> Decimal:
    pricing = ctx.spec["model"].get("pricing") or {}
    cost = input_tokens / 1000 * pricing.get("input_per_1k", 0) + output_tokens / 1000 * pricing.get("output_per_1k", 0)
    return Decimal(str(round(cost, 6)))


# --- planning -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    kind: str  # "stop" | "next" | "llm" | "tool"
    step_id: int | None = None
    messages: tuple[dict[str, Any], ...] = ()


def _budget_problem(run: Run, ctx: Context, *, tokens: int = 0, cost: Decimal = Decimal(0)) -> str:
    budgets = ctx.budgets
    if run.steps_used + 1 > budgets["steps"]:
        return f"the step budget ({budgets['steps']}) would be exceeded"
    if "tokens" in budgets and run.tokens_used + tokens > budgets["tokens"]:
        return f"the token budget ({budgets['tokens']}) would be exceeded: {run.tokens_used} used, ~{tokens} more"
    if "cost" in budgets and run.cost_used + cost > Decimal(str(budgets["cost"])):
        return f"the cost budget ({budgets['cost']}) would be exceeded: {run.cost_used} used, ~{cost} more"
    return ""


def _over_time(run: Run, ctx: Context) -> bool:
    """Over the wall-time budget: time since the run started, less the time it waited for people."""
    limit = ctx.budgets.get("wall_seconds")
    if not limit or run.started_at is None:
        return False
    return (timezone.now() - run.started_at).total_seconds() - run.waited_seconds > limit


def plan(run_id: Any, owner: str) -> Plan:
    """Decide the next step, inside one transaction; see the module docstring."""
    with transaction.atomic():
        run = _locked(run_id, owner)
        if run is None:
            return Plan("stop")
        with audit_context(actor=run_actor(run), correlation_id=run.correlation_id):
            return _plan(run)


def _plan(run: Run) -> Plan:
    ctx = context(run)
    if run.cancel_requested:
        _finish(run, RunStatus.CANCELLED, error="Cancelled on request.")
        return Plan("stop")
    if _over_time(run, ctx):
        _error_step(run, f"the wall-time budget ({ctx.budgets['wall_seconds']} s) ran out")
        _finish(run, RunStatus.TIMED_OUT, error="The wall-time budget ran out.")
        return Plan("stop")
    pending = run.steps.filter(kind=StepKind.TOOL_CALL, status__in=[StepStatus.EXECUTING, StepStatus.PROPOSED])
    step = pending.select_related("tool").order_by("seq").first()
    if step is not None and step.status == StepStatus.EXECUTING:
        return _recover(run, step)
    if step is not None:
        return _check_tool_call(run, ctx, step)
    if not run.steps.filter(kind=StepKind.LLM_CALL).exists() and not run.steps.filter(kind=StepKind.GUARDRAIL).exists():
        stop = _input_guardrails(run, ctx)
        if stop:
            return Plan("stop")
    messages = conversation(run, ctx)
    parameters = ctx.spec["model"].get("parameters") or {}
    tokens = providers.estimate_tokens(json.dumps(messages)) + int(parameters.get("max_tokens", 0) or 0)
    problem = _budget_problem(run, ctx, tokens=tokens, cost=_cost(ctx, tokens, 0))
    if problem:
        _error_step(run, f"stopped before a model call: {problem}")
        _finish(run, RunStatus.FAILED, error=f"Budget: {problem}.")
        return Plan("stop")
    return Plan("llm", messages=tuple(messages))


def _input_guardrails(run: Run, ctx: Context) -> bool:
    """Run the ``input`` checkpoint on the run's input; True when the run must stop."""
    text = json.dumps(run.input, ensure_ascii=False)
    facts = {"text": text, "channel": "run", "persona": "", "agent": run.agent.slug}
    decision = guardrail_check(checkpoint="input", facts=facts, policy_refs=ctx.policies, actor=run_actor(run),
                               target=run)  # fmt: skip
    if decision.effect == "allow":
        return False
    detail: dict[str, Any] = {"checkpoint": "input", **decision.as_dict()}
    if decision.effect == "redact":
        from governance import detectors

        kinds = [kind for kind in decision.redact if kind in detectors.KINDS]
        redacted = detectors.redact(text, detectors.detect(text, kinds), kinds)
        detail["input"] = json.loads(redacted) if _is_json(redacted) else {"text": redacted}
        _add_step(run, StepKind.GUARDRAIL, StepStatus.SUCCEEDED, detail=detail)
        return False
    _add_step(run, StepKind.GUARDRAIL, StepStatus.DENIED, detail=detail, error="; ".join(decision.reasons))
    _finish(
        run, RunStatus.FAILED, error=f"The input guardrails decided {decision.effect}: {'; '.join(decision.reasons)}"
    )
    return True


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _deny(run: Run, step: Step, reason: str, *, detail: dict[str, Any] | None = None) -> Plan:
    step.status, step.error, step.finished_at = StepStatus.DENIED, reason, timezone.now()
    step.detail = {**step.detail, **(detail or {})}
    step.save(update_fields=["status", "error", "finished_at", "detail"])
    audit_record(actor=run_actor(run), action="agent.tool.denied", target=step,
                 details={"tool": step.detail.get("tool_name", ""), "reason": reason})  # fmt: skip
    _progress(run)
    return Plan("next")


def _facts(run: Run, ctx: Context, tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"args": arguments, "input": run.input, "tool": tool.name, "risk": tool.risk, "agent": run.agent.slug}


def _check_tool_call(run: Run, ctx: Context, step: Step) -> Plan:
    """Grant, schema, constraints, rate limit, action guardrails, autonomy, approval mode → deny, park or run."""
    name = step.detail.get("tool_name", "")
    if step.detail.get("approved"):
        return _start_execution(run, ctx, step)
    if step.arguments is None:
        return _deny(run, step, f"the arguments were not a JSON object: {step.detail.get('raw_arguments', '')[:500]}")
    grant = ctx.grants.get(name)
    tool = Tool.objects.filter(name=name, available=True).first()
    if grant is None or tool is None:
        return _deny(run, step, f"the agent has no grant for the tool {name!r}")
    step.tool = tool
    step.save(update_fields=["tool"])
    expiry = parse_expiry(grant["expires_at"]) if "expires_at" in grant else None
    if expiry is not None and expiry <= timezone.now():
        return _deny(run, step, f"the grant for {name!r} expired at {expiry.isoformat()}")
    try:
        tools.validate_arguments(tool.parameters, step.arguments)
    except tools.ToolFailure as failure:
        return _deny(run, step, str(failure))
    facts = _facts(run, ctx, tool, step.arguments)
    for constraint in grant.get("constraints") or []:
        try:
            holds = compile_condition(constraint).evaluate(facts)
        except (ConditionError, ConditionRuntimeError) as error:
            return _deny(run, step, f"the constraint {constraint!r} could not be checked ({error}): denied (fail-safe)")
        if not holds:
            return _deny(run, step, f"the arguments break the constraint {constraint!r}")
    limit = grant.get("rate_limit")
    if limit:
        since = timezone.now() - dt.timedelta(seconds=limit["per_seconds"])
        used = Step.objects.filter(
            run__agent=run.agent, tool=tool, started_at__gte=since, kind=StepKind.TOOL_CALL,
            status__in=[StepStatus.EXECUTING, StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.COMPENSATED],
        ).exclude(pk=step.pk).count()  # fmt: skip
        if used >= limit["calls"]:
            return _deny(run, step, f"the rate limit of {limit['calls']} calls per {limit['per_seconds']} s is used up")
    autonomy = ctx.spec["autonomy"]
    if autonomy == "observe" and tool.side_effect == "write":
        return _deny(run, step, "the agent only observes: write tools are not allowed")
    budgets = ctx.budgets
    action_facts = {
        "tool": tool.name, "risk": tool.risk, "side_effect": tool.side_effect, "args": step.arguments,
        "agent": run.agent.slug, "autonomy": autonomy,
        "budget": {"steps_used": run.steps_used, "steps_limit": budgets["steps"], "tokens_used": run.tokens_used,
                   "tokens_limit": budgets.get("tokens", 0), "cost_used": float(run.cost_used),
                   "cost_limit": budgets.get("cost", 0)},
        "text": json.dumps(step.arguments, ensure_ascii=False),
    }  # fmt: skip
    decision = guardrail_check(checkpoint="action", facts=action_facts, policy_refs=ctx.policies,
                               actor=run_actor(run), target=step)  # fmt: skip
    if decision.effect == "deny":
        return _deny(
            run, step, "denied by policy: " + "; ".join(decision.reasons), detail={"guardrail": decision.as_dict()}
        )
    reasons: list[str] = []
    if decision.effect in ("require_approval", "escalate"):
        reasons.append("policy: " + "; ".join(decision.reasons))
    if autonomy == "propose" and tool.side_effect == "write":
        reasons.append("the agent proposes: every write needs approval")
    if autonomy == "supervised" and tool.side_effect == "write" and tool.risk in RISKY:
        reasons.append(f"supervised agent, {tool.risk}-risk write")
    approval = grant.get("approval", "never")
    if approval == "always":
        reasons.append(f"the grant for {name!r} always needs approval")
    elif isinstance(approval, dict):
        try:
            if compile_condition(approval["when"]).evaluate(facts):
                reasons.append(f"the grant's condition {approval['when']!r} holds")
        except (ConditionError, ConditionRuntimeError) as error:
            reasons.append(f"the grant's condition {approval['when']!r} could not be checked ({error}): fail-safe")
    if reasons:
        return _park(run, step, tool, "; ".join(reasons))
    return _start_execution(run, ctx, step)


def approval_payload(run: Run, step: Step, arguments: dict[str, Any]) -> dict[str, Any]:
    """What an approver is shown and their decision is bound to: tool, arguments and the agent version."""
    return {"run": str(run.pk), "agent": run.agent.slug, "version": run.version.number,
            "version_checksum": run.version.checksum, "tool": step.detail.get("tool_name", ""),
            "risk": step.tool.risk if step.tool else "", "arguments": arguments, "step": step.seq}  # fmt: skip


def _park(run: Run, step: Step, tool: Tool, reason: str, *, kind: str = "approval") -> Plan:
    item = review_item_open(
        kind=ReviewKind.TOOL_APPROVAL,
        subject=step,
        subject_label=f"{tool.name} in run {str(run.pk)[:8]} of {run.agent.slug}",
        reason=reason,
        raised_by=f"agent {run.agent.slug} v{run.version.number}",
        risk=tool.risk,
        requested_by=run.requested_by,
        payload={**approval_payload(run, step, step.arguments or {}), "question": kind},
        due_in=dt.timedelta(hours=settings.AGENTS_APPROVAL_HOURS),
        approvals_required=2 if tool.risk == Risk.CRITICAL else 1,
    )
    step.status, step.review = StepStatus.AWAITING_APPROVAL, item
    step.save(update_fields=["status", "review"])
    run.parked_at = timezone.now()
    run.save(update_fields=["parked_at"])
    _release(run, RunStatus.AWAITING_APPROVAL)
    audit_record(actor=run_actor(run), action="agent.approval.requested", target=step,
                 details={"tool": tool.name, "reason": reason, "review": item.pk, "risk": tool.risk})  # fmt: skip
    return Plan("stop")


def _start_execution(run: Run, ctx: Context, step: Step) -> Plan:
    problem = _budget_problem(run, ctx)
    if problem:
        step.status, step.error, step.finished_at = StepStatus.DENIED, f"not called: {problem}", timezone.now()
        step.save(update_fields=["status", "error", "finished_at"])
        _error_step(run, f"stopped before a tool call: {problem}")
        _finish(run, RunStatus.FAILED, error=f"Budget: {problem}.")
        return Plan("stop")
    step.status, step.idempotency_key = StepStatus.EXECUTING, f"{run.pk}:{step.seq}"
    step.started_at = timezone.now()
    step.save(update_fields=["status", "idempotency_key", "started_at"])
    run.steps_used += 1
    run.save(update_fields=["steps_used"])
    audit_record(actor=run_actor(run), action="agent.tool.executing", target=step,
                 details={"tool": step.tool.name if step.tool else "", "arguments": step.arguments,
                          "idempotency_key": step.idempotency_key})  # fmt: skip
    return Plan("tool", step_id=step.pk)


def _recover(run: Run, step: Step) -> Plan:
    """A step left ``executing``: its worker died during the call. Retry an idempotent tool with the same key;
    send a non-idempotent one to a person, who decides whether to call it again."""
    assert step.tool is not None
    if step.detail.get("retry_approved"):
        step.detail = {**step.detail, "retry_approved": False}
        step.save(update_fields=["detail"])
        details = {"tool": step.tool.name, "idempotency_key": step.idempotency_key, "approved": True}
        audit_record(actor=run_actor(run), action="agent.tool.retried", target=step, details=details)
        return Plan("tool", step_id=step.pk)
    if step.tool.idempotent:
        audit_record(actor=run_actor(run), action="agent.tool.retried", target=step,
                     details={"tool": step.tool.name, "idempotency_key": step.idempotency_key})  # fmt: skip
        return Plan("tool", step_id=step.pk)
    return _park(
        run, step, step.tool,
        f"A worker stopped while {step.tool.name} (not idempotent) was running: it may or may not have happened. "
        "Approve to call it again, reject to give up on it.",
        kind="interrupted",
    )  # fmt: skip


# --- performing and recording -------------------------------------------------------------------------------------


def _call_model(run_id: Any, plan_: Plan) -> providers.Completion | str:
    """The model's answer, retrying retryable errors with backoff inside the wall-time budget; or the error."""
    run = Run.objects.select_related("version").get(pk=run_id)
    spec = run.version.spec
    model = spec["model"]
    provider = providers.get_provider(model["provider"])
    ctx = Context(spec=spec, policies=[])
    attempts = 1 + int(model.get("max_retries", 3))
    delay = 0.5
    error = ""
    for attempt in range(attempts):
        try:
            return provider.complete(
                model=model,
                messages=list(plan_.messages),
                tools=_tool_schemas(ctx),
                timeout=float(model.get("timeout_seconds", 60)),
                script=spec.get("script") or [],
            )
        except providers.ProviderError as failure:
            error = str(failure)
            if not failure.retryable or attempt == attempts - 1 or _over_time(run, ctx):
                break
            time.sleep(delay)
            delay = min(delay * 2, 30)
    return f"{model['provider']} model {model['name']!r} failed after {attempt + 1} attempt(s): {error}"


def _record_model(run_id: Any, owner: str, outcome: providers.Completion | str) -> bool:
    with transaction.atomic():
        run = _locked(run_id, owner)
        if run is None:
            return False
        with audit_context(actor=run_actor(run), correlation_id=run.correlation_id):
            ctx = context(run)
            if isinstance(outcome, str):
                _error_step(run, outcome)
                _finish(run, RunStatus.FAILED, error=outcome)
                return False
            tokens = outcome.input_tokens + outcome.output_tokens
            cost = _cost(ctx, outcome.input_tokens, outcome.output_tokens)
            llm = _add_step(run, StepKind.LLM_CALL, StepStatus.SUCCEEDED, tokens=tokens, cost=cost,
                            detail={"message": outcome.message, "input_tokens": outcome.input_tokens,
                                    "output_tokens": outcome.output_tokens})  # fmt: skip
            run.steps_used, run.tokens_used, run.cost_used = (
                run.steps_used + 1,
                run.tokens_used + tokens,
                run.cost_used + cost,
            )
            run.save(update_fields=["steps_used", "tokens_used", "cost_used"])
            calls = [call.name for call in outcome.tool_calls]
            audit_record(actor=run_actor(run), action="agent.model.called", target=llm,
                         details={"tokens": tokens, "cost": str(cost), "tool_calls": calls})  # fmt: skip
            for call in outcome.tool_calls:
                _add_step(run, StepKind.TOOL_CALL, StepStatus.PROPOSED, call_id=call.id, arguments=call.arguments,
                          detail={"tool_name": call.name, "raw_arguments": call.raw_arguments[:4000]})  # fmt: skip
            _progress(run)
            if not outcome.tool_calls:
                return _answer(run, ctx, outcome.text)
            return True


def _answer(run: Run, ctx: Context, text: str) -> bool:
    facts = {"text": text, "channel": "run", "persona": "", "agent": run.agent.slug}
    decision = guardrail_check(checkpoint="output", facts=facts, policy_refs=ctx.policies, actor=run_actor(run),
                               target=run)  # fmt: skip
    if decision.effect in ("deny", "escalate", "require_approval"):
        _add_step(run, StepKind.GUARDRAIL, StepStatus.DENIED, detail={"checkpoint": "output", **decision.as_dict()},
                  error="; ".join(decision.reasons))  # fmt: skip
        _finish(
            run, RunStatus.FAILED, error=f"The output guardrails decided {decision.effect}: the answer is withheld."
        )
        return False
    if decision.effect == "redact":
        from governance import detectors

        kinds = [kind for kind in decision.redact if kind in detectors.KINDS]
        text = detectors.redact(text, detectors.detect(text, kinds), kinds)
        _add_step(run, StepKind.GUARDRAIL, StepStatus.SUCCEEDED, detail={"checkpoint": "output", **decision.as_dict()})
    _add_step(run, StepKind.MESSAGE, StepStatus.SUCCEEDED, detail={"text": text})
    _finish(run, RunStatus.SUCCEEDED, result={"answer": text})
    return False


def execute(tool: Tool, arguments: dict[str, Any], idempotency_key: str) -> Any:
    """Run a tool; ``ToolFailure`` with the reason when it cannot be run or does not succeed."""
    tools.validate_arguments(tool.parameters, arguments)
    if tool.kind == ToolKind.HTTP:
        return tools.call_with_timeout(
            lambda: http_tools.call(tool, arguments, tool.timeout_seconds), {}, tool.timeout_seconds + 1
        )
    spec = tools.registered().get(tool.name)
    if spec is None:
        raise tools.ToolFailure(f"the tool {tool.name!r} has no implementation in this installation")
    call_arguments = dict(arguments)
    if tools.IDEMPOTENCY_KEY in inspect.signature(spec.function).parameters:
        call_arguments[tools.IDEMPOTENCY_KEY] = idempotency_key
    return tools.call_with_timeout(spec.function, call_arguments, tool.timeout_seconds)


def _record_tool(run_id: Any, owner: str, step_id: int, result: Any, failure: str) -> bool:
    with transaction.atomic():
        run = _locked(run_id, owner)
        if run is None:
            return False
        with audit_context(actor=run_actor(run), correlation_id=run.correlation_id):
            step = Step.objects.select_for_update(of=("self",)).select_related("tool").get(pk=step_id)
            step.status = StepStatus.FAILED if failure else StepStatus.SUCCEEDED
            step.result, step.error, step.finished_at = (None if failure else result), failure, timezone.now()
            step.save(update_fields=["status", "result", "error", "finished_at"])
            audit_record(actor=run_actor(run), action=f"agent.tool.{step.status}", target=step,
                         details={"tool": step.tool.name if step.tool else "", "error": failure,
                                  "duration_ms": step.duration_ms})  # fmt: skip
            _progress(run)
            return True


def advance(run_id: Any, owner: str) -> None:
    """Claim the run and advance it until it finishes, parks for a person, or its lease is lost."""
    if not claim(run_id, owner):
        return
    while True:
        next_plan = plan(run_id, owner)
        if next_plan.kind == "stop":
            return
        if next_plan.kind == "llm":
            with _heartbeat(run_id, owner):
                outcome = _call_model(run_id, next_plan)
            if not _record_model(run_id, owner, outcome):
                return
        elif next_plan.kind == "tool":
            assert next_plan.step_id is not None
            step = Step.objects.select_related("tool").get(pk=next_plan.step_id)
            assert step.tool is not None
            try:
                with _heartbeat(run_id, owner):
                    result, failure = execute(step.tool, step.arguments or {}, step.idempotency_key), ""
            except tools.ToolFailure as error:
                result, failure = None, str(error)
            if not _record_tool(run_id, owner, step.pk, result, failure):
                return
