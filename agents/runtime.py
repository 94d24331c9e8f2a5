"""The agent runtime: advances a run one committed step at a time, under a lease.

``advance(run_id, owner)`` is what the Celery task calls. It claims the run's lease with a guarded update (0 rows:
someone else has it, or it is not runnable), then repeats: *plan* the next step inside a short transaction (the
lease is checked and renewed, the decision and any preparation are committed), *perform* the slow part with no
transaction open (a model call, a tool call), *record* the outcome in another short transaction. Nothing slow sits
between recording a step and planning the next, so they share that transaction; should planning fail, the
transaction is rolled back and the outcome recorded alone in another, then the error raised: a tool's result is
never lost. A tool call denied while planning is recorded, and the step after it planned, in the same transaction
too. A crash between any two transactions loses nothing: the sweeper re-enqueues a run whose lease expired, and
planning resumes from the last committed step.

Every transaction reads under lock what others may change on the run (a cancellation, the lease) and writes all
its changes to it in one UPDATE at the end, none when nothing changed (the lease is renewed when half of it is
gone; a heartbeat renews it during slow calls). While one ``advance()`` holds the lease it keeps the run, its steps
and the tools the model is shown in memory (read once; only the lease holder writes a running run's steps): the
pending tool calls, the next step's number and the model's conversation come from there. The pinned agent version
never changes: its spec comes from ``selectors.frozen_versions``.

The loop, as DESIGN.md's reliability rules say: input guardrails; budget check; model call; for each tool call the
model proposed: grant, argument schema, argument constraints, rate limit, ``action`` guardrails, autonomy level
and the grant's approval mode → execute, deny (the model is told why), or park for approval (the run holds no
worker while it waits); output guardrails; finish. A tool with side effects is committed as ``executing`` with an
idempotency key before it runs; finding one still ``executing`` means a worker died during the call: an
idempotent tool is called again with the same key, a non-idempotent one goes to the review queue.
"""

import contextlib
import datetime as dt
import functools
import inspect
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.db.models import F, Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents import http_tools, outcomes, providers, replies, tool_versions, tools
from agents.models import Run, RunStatus, SideEffect, Step, StepKind, StepStatus, Tool, ToolKind
from agents.signals import run_finished
from agents.spec import parse_expiry
from audit.context import Actor, audit_context
from audit.services import audit_record
from governance import detectors, policies, selectors
from governance.guardrails import guardrail_check
from governance.models import GovernedObject, ReviewItem, ReviewKind, ReviewStatus, Risk
from governance.policies import ConditionError, ConditionRuntimeError, compile_condition
from governance.services import review_item_open

SETTLED = (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.DENIED, StepStatus.COMPENSATED)
RISKY = (Risk.HIGH, Risk.CRITICAL)
PENDING = (StepStatus.EXECUTING, StepStatus.PROPOSED)
# The steps the model's messages are made of (see ``conversation``).
IN_CONVERSATION_KINDS = (StepKind.GUARDRAIL, StepKind.MEMORY, StepKind.LLM_CALL, StepKind.TOOL_CALL)
IN_CONVERSATION = Q(kind__in=[StepKind.GUARDRAIL, StepKind.MEMORY, StepKind.LLM_CALL]) | (
    Q(kind=StepKind.TOOL_CALL, status__in=SETTLED) & ~Q(call_id="")
)
# The steps a run's outcome is decided from (see ``_finish``).
OUTCOME_KINDS = (StepKind.TOOL_CALL, StepKind.APPROVAL, StepKind.GUARDRAIL)
# What others may change on a run while a worker holds its lease (see ``_locked``): a cancellation, or the lease.
VOLATILE_RUN_FIELDS = ("status", "lease_owner", "lease_expires_at", "cancel_requested")


def run_actor(run: Run) -> Actor:
    return Actor(type="agent_run", id=str(run.pk), label=f"run {str(run.pk)[:8]} of {run.agent.slug}")


# --- leases -------------------------------------------------------------------------------------------------------


def _claim(run_id: Any, owner: str) -> bool:
    """Take the run's lease if it is free or expired (committed at once: the claim counts even if the worker dies)."""
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
    return bool(claimed)


def claim(run_id: Any, owner: str) -> bool:
    """Take the run's lease if it is free or expired; a run claimed too often without progress is dead-lettered."""
    if not _claim(run_id, owner):
        return False
    if Run.objects.filter(pk=run_id).values_list("deliveries", flat=True).get() > settings.AGENTS_MAX_DELIVERIES:
        _in_transaction(run_id, owner, _Memory(), _dead_letter)
        return False
    return True


def _dead_letter(run: Run) -> "Plan":
    """Fail a run that was claimed too often without progress (``advance()`` checks in its first transaction)."""
    if run.deliveries <= settings.AGENTS_MAX_DELIVERIES:
        return NEXT
    _error_step(run, f"picked up {run.deliveries - 1} times without progress: dead letter")
    _finish(run, RunStatus.FAILED, error="The run was picked up too often without progress (dead letter).")
    return STOP


class _Heartbeat:
    """Keeps renewing the lease while a model or tool call runs outside any transaction, so a slow call is not taken
    for a dead worker; a killed worker stops beating and the lease expires as it should.

    One thread for a whole ``advance()``, started at its first call (not one a call): it wakes every third of a
    lease (at least every second) and renews the lease when a call is under way. A call waits, as it ends, for a
    renewal under way, so that none overlaps the transaction that records the call."""

    def __init__(self, run_id: Any, owner: str) -> None:
        self.run_id, self.owner = run_id, owner
        self.lock = threading.Lock()  # held to renew, and to start or end a call
        self.calling = False
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    @contextlib.contextmanager
    def during_call(self) -> Iterator[None]:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._beat, daemon=True, name="lease-heartbeat")
            self.thread.start()
        with self.lock:
            self.calling = True
        try:
            yield
        finally:
            with self.lock:
                self.calling = False

    def _beat(self) -> None:
        lease = settings.AGENTS_LEASE_SECONDS
        try:
            while not self.stop.wait(max(1.0, lease / 3)):
                with self.lock:
                    if self.calling:
                        Run.objects.filter(pk=self.run_id, lease_owner=self.owner).update(
                            lease_expires_at=timezone.now() + dt.timedelta(seconds=lease)
                        )
        finally:
            connections.close_all()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


@dataclass(eq=False)
class _Memory:
    """What one ``advance()`` keeps between its transactions while it holds the run's lease. Only the lease holder
    writes a running run's steps, so they are read once; the run row is read, locked, in every transaction."""

    agent: GovernedObject | None = None
    steps: list[Step] | None = None  # the run's steps in seq order; None: not read yet
    schemas: list[dict[str, Any]] | None = None  # the granted tools as the model is shown them; None: not read yet
    record_only: bool = False  # record an outcome without planning what comes next (see ``_in_transaction``)
    run: Run | None = None  # the run as the last transaction left it
    held: Run | None = None  # the run locked by the transaction under way
    unsaved: set[str] = field(default_factory=set)  # its changed fields, written in one UPDATE at the end


_MEMORY = "_runtime_memory"  # where a run locked by the runtime keeps its memory (in the instance's __dict__)


def _memory(run: Run) -> _Memory | None:
    """The memory of the runtime's transaction under way when it holds this very instance of the run, else None."""
    memory = run.__dict__.get(_MEMORY)
    return memory if isinstance(memory, _Memory) and memory.held is run else None


def _steps(run: Run) -> list[Step]:
    memory = _memory(run)
    assert memory is not None, "only for a run the runtime holds"
    assert memory.steps is not None
    return memory.steps


def _save(run: Run, *fields: str) -> None:
    """Save these fields of the run: in the runtime's transaction, with its other changes at its end (one UPDATE,
    the lease renewal included); else at once."""
    memory = _memory(run)
    if memory is None:
        run.save(update_fields=fields)
    else:
        memory.unsaved.update(fields)


def _flush(run: Run) -> None:
    """Write the run's changes saved so far in the runtime's transaction (a change besides the lease's renewal
    is a change of the run: its ``updated_at`` too)."""
    memory = _memory(run)
    if memory is not None and memory.unsaved:
        if memory.unsaved - {"lease_expires_at"}:
            run.updated_at = timezone.now()
            memory.unsaved.add("updated_at")
        run.save(update_fields=sorted(memory.unsaved))
        memory.unsaved.clear()


def _locked(run_id: Any, owner: str, memory: _Memory) -> Run | None:
    """The run, locked, if ``owner`` still holds its lease (renewed with the transaction's other changes, see
    ``_save``); None when the lease was lost. The first lock of an ``advance()`` reads the run and its steps; the
    next ones read only what others may change while the lease is held (a cancellation) and what tells the lease."""
    runs = Run.objects.select_for_update(of=("self",), no_key=True).filter(pk=run_id)
    if memory.run is None:
        run = runs.select_related("agent").get()
        memory.agent = run.agent
    else:
        run = memory.run
        run.status, run.lease_owner, run.lease_expires_at, run.cancel_requested = runs.values_list(
            *VOLATILE_RUN_FIELDS
        ).get()
    if run.lease_owner != owner or run.status != RunStatus.RUNNING:
        return None
    if memory.steps is None:
        memory.steps = list(run.steps.select_related("tool").order_by("seq"))
    run.__dict__[_MEMORY] = memory
    memory.run = memory.held = run
    memory.unsaved = set()
    lease = dt.timedelta(seconds=settings.AGENTS_LEASE_SECONDS)
    now = timezone.now()
    if run.lease_expires_at is None or run.lease_expires_at - now < lease / 2:
        run.lease_expires_at = now + lease
        _save(run, "lease_expires_at")
    return run


class _PlanFailed(Exception):
    """Planning failed after an outcome was recorded in the same transaction: record it alone, then raise ``error``."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _in_transaction(run_id: Any, owner: str, memory: _Memory, work: Callable[[Run], "Plan"]) -> "Plan":
    """``work`` on the locked run, in one transaction, under the run's actor; stop when the lease was lost.

    When planning fails after ``work`` recorded an outcome (``_then_plan``), the whole transaction is rolled back
    and ``work`` done again without planning, in a transaction of its own (what was recorded is kept: a tool's
    result is never lost), and the error raised after. What this ``advance()`` kept in memory is read afresh."""
    try:
        with transaction.atomic():
            run = _locked(run_id, owner, memory)
            if run is None:
                return STOP
            try:
                with audit_context(actor=run_actor(run), correlation_id=run.correlation_id):
                    decided = work(run)
                _flush(run)
            finally:
                memory.held = None
    except _PlanFailed as failed:
        memory.run, memory.steps, memory.record_only = None, None, True
        try:
            _in_transaction(run_id, owner, memory, work)
        finally:
            memory.record_only = False
        raise failed.error from failed
    return decided


def _release(run: Run, status: str) -> None:
    run.status, run.lease_owner, run.lease_expires_at, run.updated_at = status, "", None, timezone.now()
    _save(run, "status", "lease_owner", "lease_expires_at", "updated_at")


# What ``_finish`` writes on the run.
FINISH_FIELDS = ("result", "error", "finished_at", "status", "lease_owner", "lease_expires_at", "updated_at")


def _finish(run: Run, status: str, *, result: Any = None, error: str = "") -> None:
    """End the run with ``status``, and its outcome (``agents.outcomes``) decided in the same transaction."""
    answer = result.get("answer") if isinstance(result, dict) else None
    decided = outcomes.decide(status=status, steps=_outcome_facts(run), answer=answer, error=error)
    run.result, run.error, run.finished_at = result, error, timezone.now()
    run.status, run.lease_owner, run.lease_expires_at, run.updated_at = status, "", None, timezone.now()
    run.outcome, run.outcome_reason = decided.outcome, decided.reason
    _save(run, *FINISH_FIELDS, "outcome", "outcome_reason")
    _flush(run)  # written before the end is announced
    audit_record(
        actor=run_actor(run),
        action=f"agent.run.{status}",
        target=run,
        correlation_id=run.correlation_id,
        details={
            "error": error,
            "steps": run.steps_used,
            "tokens": run.tokens_used,
            "cost": str(run.cost_used),
            **decided.as_details(),
        },
    )
    run_finished.send(sender=Run, run=run)


def roll_back(run: Run) -> None:
    """Mark a run whose every write was undone ``rolled_back``: whatever it achieved, it is not completed now."""
    decided = outcomes.decide(status=RunStatus.ROLLED_BACK, steps=())
    run.status, run.updated_at = RunStatus.ROLLED_BACK, timezone.now()
    run.outcome, run.outcome_reason = decided.outcome, decided.reason
    run.save(update_fields=["status", "updated_at", "outcome", "outcome_reason"])


def _side_effect(run: Run, tool: str) -> str:
    """The side effect of ``tool`` in the version the run's agent version pins ("" when it pins none)."""
    pinned = tool_versions.pinned(run.version_id).get(tool)
    return pinned.side_effect if pinned else ""


def _outcome_facts(run: Run) -> list[outcomes.StepFacts]:
    """What the outcome rules read of the run's tool calls, approvals and guardrails (the steps the runtime holds,
    else read), with which of the items they waited for expired."""
    memory = _memory(run)
    if memory is not None and memory.steps is not None:
        steps = [step for step in memory.steps if step.kind in OUTCOME_KINDS]
    else:
        steps = list(Step.objects.filter(run_id=run.pk, kind__in=OUTCOME_KINDS).select_related("tool").order_by("seq"))
    reviews = [step.review_id for step in steps if step.review_id is not None]
    expired = set(ReviewItem.objects.filter(pk__in=reviews, status=ReviewStatus.EXPIRED).values_list("pk", flat=True))
    return [
        outcomes.facts_of(
            step,
            write=step.tool is not None and _side_effect(run, step.tool.name) == SideEffect.WRITE,
            expired=step.review_id in expired,
        )
        for step in steps
    ]


# --- steps --------------------------------------------------------------------------------------------------------


def _next_seq(run: Run) -> int:
    return (run.steps.aggregate(last=Max("seq"))["last"] or 0) + 1


def _add_step(run: Run, kind: str, status: str, **fields: Any) -> Step:
    return _add_steps(run, [(kind, status, fields)])[0]


def _add_steps(run: Run, new: list[tuple[str, str, dict[str, Any]]]) -> list[Step]:
    """Steps ``(kind, status, fields)`` numbered after the run's last, inserted together where the database gives
    their ids back (PostgreSQL, SQLite 3.35+). A run the runtime holds knows its last number."""
    memory = _memory(run)
    steps = memory.steps if memory is not None else None
    last = _next_seq(run) - 1 if steps is None else (steps[-1].seq if steps else 0)
    now = timezone.now()
    added = [
        Step(run=run, seq=last + number, kind=kind, status=status, started_at=now,
             finished_at=None if status in (StepStatus.PROPOSED, StepStatus.EXECUTING) else now, **fields)
        for number, (kind, status, fields) in enumerate(new, 1)
    ]  # fmt: skip
    if len(added) > 1 and connections[Step.objects.db].features.can_return_rows_from_bulk_insert:
        Step.objects.bulk_create(added)
    else:
        for step in added:
            step.save(force_insert=True)
    if steps is not None:
        steps.extend(added)
    return added


def _error_step(run: Run, error: str) -> Step:
    return _add_step(run, StepKind.ERROR, StepStatus.FAILED, error=error)


def _progress(run: Run) -> None:
    """A step was committed: the run is making progress, so redeliveries start counting afresh."""
    if run.deliveries:
        run.deliveries = 0
        _save(run, "deliveries")


# --- what the model sees ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    spec: dict[str, Any]
    policies: list[policies.PolicyRef]
    extensions: dict[str, Any] = field(default_factory=dict)  # what people added to the budgets (overrun reviews)
    # The tool versions the agent version pins, by name: their definitions decide every call (``tool_versions``).
    tools: dict[str, tool_versions.ToolDefinition] = field(default_factory=dict)

    @property
    def grants(self) -> dict[str, dict[str, Any]]:
        return {grant["tool"]: grant for grant in self.spec.get("grants") or []}

    @property
    def budgets(self) -> dict[str, Any]:
        """The agent's budgets, with what people granted this run on top."""
        budgets = dict(self.spec.get("budgets") or {})
        for name, extra in self.extensions.items():
            if name in budgets:
                total = Decimal(str(budgets[name])) + Decimal(str(extra))
                budgets[name] = float(total) if name == "cost" else int(total)
        return budgets

    @property
    def reviews_overruns(self) -> bool:
        """A budget about to be exceeded goes to a person (the agent's escalation policy) instead of failing."""
        return (self.spec.get("escalation") or {}).get("budget_overrun", "fail") == "review"


def _spec(run: Run) -> dict[str, Any]:
    """The spec of the run's pinned agent version (immutable: read once per process)."""
    return selectors.frozen_versions([run.version_id])[0][2]


def context(run: Run) -> Context:
    refs = [
        policies.PolicyRef(slug=slug, version=number, spec=policy)
        for slug, number, policy in selectors.frozen_versions([p["id"] for p in run.policy_versions])
    ]
    tools = tool_versions.pinned(run.version_id)
    return Context(spec=_spec(run), policies=refs, extensions=run.budget_extensions, tools=tools)


def conversation(run: Run, ctx: Context) -> list[dict[str, Any]]:
    """The messages for the model, made of the run's committed steps: those the runtime keeps in memory while it
    holds the run, else one query of what the messages are made of: the instructions, what the run remembers of
    earlier runs (see ``_recall``), the input (as the input guardrails left it), then the model's turns and the
    tool results."""
    held = _memory(run)
    steps: Iterable[tuple[str, str, str, Any, Any, str]] = (
        (
            (step.kind, step.status, step.call_id, step.detail, step.result, step.error)
            for step in held.steps
            if step.kind in IN_CONVERSATION_KINDS
        )
        if held is not None and held.steps is not None
        else Step.objects.filter(IN_CONVERSATION, run_id=run.pk)
        .order_by("seq")
        .values_list("kind", "status", "call_id", "detail", "result", "error")
    )
    run_input = run.input
    messages: list[dict[str, Any]] = [{"role": "system", "content": ctx.spec["instructions"]}]
    asked = False  # the run's input is in

    def ask() -> None:
        messages.append({"role": "user", "content": json.dumps(run_input, ensure_ascii=False)})

    for kind, status, call_id, detail, result, error in steps:
        if kind == StepKind.GUARDRAIL and "input" in detail:
            run_input = detail["input"]
        elif kind == StepKind.MEMORY and detail["runs"]:
            messages.append({"role": "system", "content": REMEMBERED + json.dumps(detail["runs"], ensure_ascii=False),
                             "meta": {"memory": detail["runs"]}})  # fmt: skip
        elif kind == StepKind.LLM_CALL:
            if not asked:
                ask()
                asked = True
            messages.append(replies.refusal_message(error) if status == StepStatus.FAILED else detail["message"])
        elif kind == StepKind.TOOL_CALL and call_id and status in SETTLED:
            content = result if status == StepStatus.SUCCEEDED else {"error": error}
            messages.append({"role": "tool", "tool_call_id": call_id, "content": json.dumps(content)})
    if not asked:
        ask()
    return messages


REMEMBERED = "What you remember of earlier runs, newest first (their input and your answer):\n"


def _recall(run: Run, ctx: Context) -> None:
    """What the run remembers, by the agent's memory scope: the input (as its input guardrails left it) and the
    answer of the latest succeeded runs of the agent, of any version: none; those started by the same user or API
    client (``requester``); or all (``agent``). Recorded once, as a ``memory`` step, before the first model call, so
    the conversation is the same however often it is rebuilt."""
    memory = ctx.spec.get("memory") or {}
    scope = memory.get("scope", "none")
    if scope == "none":
        return
    earlier = Run.objects.filter(agent_id=run.agent_id, status=RunStatus.SUCCEEDED).exclude(pk=run.pk)
    if scope == "requester":
        earlier = earlier.filter(requested_by_id=run.requested_by_id)
    rows = list(earlier.order_by("-finished_at").values_list("pk", "input", "result", "finished_at")[
        : memory.get("runs", 5)
    ])  # fmt: skip
    masked = dict(
        Step.objects.filter(run_id__in=[pk for pk, *_ in rows], kind=StepKind.GUARDRAIL, detail__has_key="input")
        .values_list("run_id", "detail__input")
    )  # fmt: skip
    runs = [{"run": str(pk), "finished_at": finished.isoformat() if finished else "", "input": masked.get(pk, asked),
             "answer": (result or {}).get("answer", "")} for pk, asked, result, finished in rows]  # fmt: skip
    detail = {"scope": scope, "runs": runs, "text": f"remembered {len(runs)} earlier run(s)"}
    step = _add_step(run, StepKind.MEMORY, StepStatus.SUCCEEDED, detail=detail)
    audit_record(actor=run_actor(run), action="agent.memory.recalled", target=step,
                 details={"scope": scope, "runs": [entry["run"] for entry in runs]})  # fmt: skip


def _tool_schemas(run: Run, ctx: Context) -> list[dict[str, Any]]:
    """The granted tools that are available, as the model is shown them by the versions the agent version pins: read
    once per ``advance()`` (a tool made unavailable since is still refused when called, see ``_check_tool_call``)."""
    memory = _memory(run)
    if memory is not None and memory.schemas is not None:
        return memory.schemas
    available = Tool.objects.filter(name__in=list(ctx.grants), available=True).values_list("name", flat=True)
    schemas = [
        {"name": name, "description": ctx.tools[name].description, "parameters": ctx.tools[name].parameters}
        for name in sorted(available)
        if name in ctx.tools
    ]
    if memory is not None:
        memory.schemas = schemas
    return schemas


def _cost(ctx: Context, input_tokens: int, output_tokens: int) -> Decimal:
    pricing = ctx.spec["model"].get("pricing") or {}
    cost = input_tokens / 1000 * pricing.get("input_per_1k", 0) + output_tokens / 1000 * pricing.get("output_per_1k", 0)
    return Decimal(str(round(cost, 6)))


# --- planning -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    kind: str  # "stop" | "next" | "llm" | "tool"
    messages: tuple[dict[str, Any], ...] = ()  # "llm": the conversation so far
    tools: tuple[dict[str, Any], ...] = ()  # "llm": the tools the model is offered
    step: Step | None = field(default=None, compare=False)  # "tool": the step to perform, its tool loaded


STOP = Plan("stop")
NEXT = Plan("next")


@dataclass(frozen=True)
class Overrun:
    """A budget the next call would exceed (or, for wall time, has run out)."""

    budget: str  # steps | tokens | cost | wall_seconds
    used: str
    reason: str


def _budget_problem(run: Run, ctx: Context, *, tokens: int = 0, cost: Decimal = Decimal(0)) -> Overrun | None:
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


def _over_time(run: Run, ctx: Context) -> Overrun | None:
    """Over the wall-time budget: time since the run started, less the time it waited for people."""
    limit = ctx.budgets.get("wall_seconds")
    if not limit or run.started_at is None:
        return None
    spent = (timezone.now() - run.started_at).total_seconds() - run.waited_seconds
    if spent <= limit:
        return None
    return Overrun("wall_seconds", f"{spent:.0f}", f"the wall-time budget ({limit:g} s) ran out")


def _over_budget(run: Run, ctx: Context, overrun: Overrun, *, before: str) -> Plan:
    """Stop before a call that would exceed a budget: the run fails (ends ``timed_out`` for wall time); or, when the
    agent's escalation policy says ``review``, it waits for a person, who may grant that budget once more (a budget
    of 0 cannot be granted again: it fails)."""
    extension = ctx.spec["budgets"][overrun.budget]
    if not ctx.reviews_overruns or not extension:
        _error_step(run, overrun.reason if overrun.budget == "wall_seconds" else f"stopped before {before}: "
                    f"{overrun.reason}")  # fmt: skip
        if overrun.budget == "wall_seconds":
            _finish(run, RunStatus.TIMED_OUT, error="The wall-time budget ran out.")
        else:
            _finish(run, RunStatus.FAILED, error=f"Budget: {overrun.reason}.")
        return STOP
    asked = f"{overrun.reason}, before {before}: approving grants {extension:g} more"
    step = _add_step(run, StepKind.APPROVAL, StepStatus.AWAITING_APPROVAL,
                     detail={"budget": overrun.budget, "extension": extension, "reason": overrun.reason,
                             "text": asked})  # fmt: skip
    item = review_item_open(
        kind=ReviewKind.BUDGET_OVERRUN,
        subject=step,
        subject_label=f"{overrun.budget} budget of run {str(run.pk)[:8]} of {run.agent.slug}",
        reason=asked[0].upper() + asked[1:] + ".",
        raised_by=f"agent {run.agent.slug} v{run.version.number}",
        risk=Risk.MEDIUM,
        requested_by=run.requested_by,
        payload={"run": str(run.pk), "agent": run.agent.slug, "version": run.version.number,
                 "budget": overrun.budget, "limit": ctx.budgets[overrun.budget], "used": overrun.used,
                 "extension": extension, "question": "budget_overrun"},
        due_in=dt.timedelta(hours=settings.AGENTS_APPROVAL_HOURS),
    )  # fmt: skip
    step.review = item
    step.save(update_fields=["review"])
    run.parked_at = timezone.now()
    _save(run, "parked_at")
    _release(run, RunStatus.AWAITING_APPROVAL)
    audit_record(actor=run_actor(run), action="agent.budget.overrun", target=step,
                 details={"budget": overrun.budget, "reason": overrun.reason, "review": item.pk,
                          "extension": extension})  # fmt: skip
    return STOP


def plan(run_id: Any, owner: str) -> Plan:
    """Decide the next step, inside one transaction; see the module docstring."""
    return _in_transaction(run_id, owner, _Memory(), _plan)


def _first_plan(run: Run) -> Plan:
    """The first transaction of an ``advance()``: a run claimed too often without progress is dead-lettered."""
    decided = _dead_letter(run)
    return decided if decided.kind == "stop" else _plan(run)


def _then_plan(run: Run) -> Plan:
    """Plan the next step in the transaction that recorded the last one; should planning fail, see
    ``_in_transaction``."""
    memory = _memory(run)
    assert memory is not None
    if memory.record_only:
        return STOP
    try:
        return _plan(run)
    except Exception as error:
        raise _PlanFailed(error) from error


def _plan(run: Run) -> Plan:
    """Decide the next step; a tool call denied is recorded and the step after it decided in the same transaction."""
    while True:
        decided = _decide(run)
        if decided.kind != "next":
            return decided


def _decide(run: Run) -> Plan:
    ctx = context(run)
    if run.cancel_requested:
        _finish(run, RunStatus.CANCELLED, error="Cancelled on request.")
        return STOP
    overrun = _over_time(run, ctx)
    if overrun is not None:
        return _over_budget(run, ctx, overrun, before="its next step")
    steps = _steps(run)
    step = _pending(steps)
    if step is not None and step.status == StepStatus.EXECUTING:
        return _recover(run, ctx, step)
    if step is not None:
        return _check_tool_call(run, ctx, step)
    if _no_model_call_yet(steps):
        stop = _input_guardrails(run, ctx)
        if stop:
            return STOP
        _recall(run, ctx)
    llm, overrun = _model_call(run, ctx)
    if overrun is not None:
        return _over_budget(run, ctx, overrun, before="a model call")
    return llm


def _pending(steps: list[Step]) -> Step | None:
    """The first tool call still to be decided (proposed) or left ``executing`` (its worker died)."""
    return next((step for step in steps if step.kind == StepKind.TOOL_CALL and step.status in PENDING), None)


def _no_model_call_yet(steps: list[Step]) -> bool:
    """No model call, guardrail or memory step yet: the input guardrails are still to be run, and memory recalled."""
    return not any(step.kind in (StepKind.LLM_CALL, StepKind.GUARDRAIL, StepKind.MEMORY) for step in steps)


def _model_call(run: Run, ctx: Context) -> tuple[Plan, Overrun | None]:
    """The next model call, and the budget it would exceed, if any."""
    messages = conversation(run, ctx)
    parameters = ctx.spec["model"].get("parameters") or {}
    tokens = providers.estimate_tokens(json.dumps(messages)) + int(parameters.get("max_tokens", 0) or 0)
    llm = Plan("llm", messages=tuple(messages), tools=tuple(_tool_schemas(run, ctx)))
    return llm, _budget_problem(run, ctx, tokens=tokens, cost=_cost(ctx, tokens, 0))


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
    step.save(update_fields=["status", "error", "finished_at", "detail", "tool"])
    audit_record(actor=run_actor(run), action="agent.tool.denied", target=step,
                 details={"tool": step.detail.get("tool_name", ""), "reason": reason})  # fmt: skip
    _progress(run)
    return NEXT


def _facts(run: Run, ctx: Context, tool: tool_versions.ToolDefinition, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"args": arguments, "input": run.input, "tool": tool.name, "risk": tool.risk, "agent": run.agent.slug}


def _check_tool_call(run: Run, ctx: Context, step: Step) -> Plan:
    """Grant, schema, constraints, rate limit, action guardrails, autonomy, approval mode → deny, park or run."""
    name = step.detail.get("tool_name", "")
    if step.detail.get("approved"):
        return _start_execution(run, ctx, step)
    if step.arguments is None:
        return _deny(run, step, f"the arguments were not a JSON object: {step.detail.get('raw_arguments', '')[:500]}")
    grant = ctx.grants.get(name)
    row = Tool.objects.filter(name=name, available=True).first()
    if grant is None or row is None:
        return _deny(run, step, f"the agent has no grant for the tool {name!r}")
    step.tool = row  # saved with the step's next change: denied, parked or executing
    tool = ctx.tools.get(name)  # the definition the agent version was approved with
    if tool is None:
        return _deny(run, step, f"the agent version pins no version of {name!r}: submit it again to pin one")
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
            run__agent=run.agent, tool=row, started_at__gte=since, kind=StepKind.TOOL_CALL,
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
    masked = _masked(step.arguments, decision.redact) if decision.redact else step.arguments
    if masked != step.arguments:  # what the tool gets, the approver sees and the trail records: masked
        step.arguments = masked
        step.detail = {**step.detail, "raw_arguments": json.dumps(masked, ensure_ascii=False)[:4000],
                       "redacted": list(decision.redact)}  # fmt: skip
        step.save(update_fields=["arguments", "detail"])
        try:
            tools.validate_arguments(tool.parameters, masked)
        except tools.ToolFailure as failure:
            return _deny(run, step, f"once masked by policy, the arguments no longer fit the tool: {failure}")
        facts = _facts(run, ctx, tool, masked)
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


def _masked(value: Any, kinds: Sequence[str]) -> Any:
    """``value`` with the personal data of ``kinds`` masked in every string in it (``[EMAIL]``, ...)."""
    if isinstance(value, str):
        return detectors.redact(value, detectors.detect(value, kinds), kinds)
    if isinstance(value, list):
        return [_masked(item, kinds) for item in value]
    if isinstance(value, dict):
        return {key: _masked(item, kinds) for key, item in value.items()}
    return value


def approval_payload(
    run: Run, step: Step, tool: tool_versions.ToolDefinition, arguments: dict[str, Any]
) -> dict[str, Any]:
    """What an approver is shown and their decision is bound to: the tool as the agent version pins it (its version,
    risk and, for an HTTP tool, the request), the arguments and the agent version."""
    payload = {
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
        payload["request"] = {"method": tool.method, "url_template": tool.url_template}
    return payload


def _park(run: Run, step: Step, tool: tool_versions.ToolDefinition, reason: str, *, kind: str = "approval") -> Plan:
    item = review_item_open(
        kind=ReviewKind.TOOL_APPROVAL,
        subject=step,
        subject_label=f"{tool.name} in run {str(run.pk)[:8]} of {run.agent.slug}",
        reason=reason,
        raised_by=f"agent {run.agent.slug} v{run.version.number}",
        risk=tool.risk,
        requested_by=run.requested_by,
        payload={**approval_payload(run, step, tool, step.arguments or {}), "question": kind},
        due_in=dt.timedelta(hours=settings.AGENTS_APPROVAL_HOURS),
        approvals_required=2 if tool.risk == Risk.CRITICAL else 1,
    )
    step.status, step.review = StepStatus.AWAITING_APPROVAL, item
    step.save(update_fields=["status", "review", "tool"])
    run.parked_at = timezone.now()
    _save(run, "parked_at")
    _release(run, RunStatus.AWAITING_APPROVAL)
    audit_record(actor=run_actor(run), action="agent.approval.requested", target=step,
                 details={"tool": tool.name, "reason": reason, "review": item.pk, "risk": tool.risk})  # fmt: skip
    return STOP


def _start_execution(run: Run, ctx: Context, step: Step) -> Plan:
    overrun = _budget_problem(run, ctx)
    if overrun is not None:
        if not ctx.reviews_overruns:  # else the call stays proposed, checked again if the run goes on
            step.status, step.error = StepStatus.DENIED, f"not called: {overrun.reason}"
            step.finished_at = timezone.now()
            step.save(update_fields=["status", "error", "finished_at", "tool"])
        return _over_budget(run, ctx, overrun, before="a tool call")
    step.status, step.idempotency_key = StepStatus.EXECUTING, f"{run.pk}:{step.seq}"
    step.started_at = timezone.now()
    step.save(update_fields=["status", "idempotency_key", "started_at", "tool"])
    run.steps_used += 1
    _save(run, "steps_used")
    audit_record(actor=run_actor(run), action="agent.tool.executing", target=step,
                 details={"tool": step.tool.name if step.tool else "", "arguments": step.arguments,
                          "idempotency_key": step.idempotency_key})  # fmt: skip
    return Plan("tool", step=step)


def _recover(run: Run, ctx: Context, step: Step) -> Plan:
    """A step left ``executing``: its worker died during the call. Retry an idempotent tool with the same key;
    send a non-idempotent one to a person, who decides whether to call it again."""
    assert step.tool is not None
    if step.detail.get("retry_approved"):
        step.detail = {**step.detail, "retry_approved": False}
        step.save(update_fields=["detail"])
        details = {"tool": step.tool.name, "idempotency_key": step.idempotency_key, "approved": True}
        audit_record(actor=run_actor(run), action="agent.tool.retried", target=step, details=details)
        return Plan("tool", step=step)
    pinned = ctx.tools.get(step.tool.name)
    if pinned is None:
        return _deny(run, step, f"not called again: the agent version pins no version of {step.tool.name!r}")
    if pinned.idempotent:
        audit_record(actor=run_actor(run), action="agent.tool.retried", target=step,
                     details={"tool": step.tool.name, "idempotency_key": step.idempotency_key})  # fmt: skip
        return Plan("tool", step=step)
    return _park(
        run, step, pinned,
        f"A worker stopped while {step.tool.name} (not idempotent) was running: it may or may not have happened. "
        "Approve to call it again, reject to give up on it.",
        kind="interrupted",
    )  # fmt: skip


# --- performing and recording -------------------------------------------------------------------------------------


def _call_model(run: Run, plan_: Plan) -> providers.Completion | providers.ReplyRefused | str:
    """The model's answer, retrying retryable errors with backoff inside the wall-time budget; a reply refused as
    it came; or the error."""
    spec = _spec(run)
    model = spec["model"]
    provider = providers.get_provider(model["provider"])
    ctx = Context(spec=spec, policies=[], extensions=run.budget_extensions)
    attempts = 1 + int(model.get("max_retries", 3))
    delay = 0.5
    error = ""
    for attempt in range(attempts):
        try:
            return provider.complete(
                model=model,
                messages=list(plan_.messages),
                tools=list(plan_.tools),
                timeout=float(model.get("timeout_seconds", 60)),
                script=spec.get("script") or [],
            )
        except providers.ReplyRefused as refused:
            return refused  # recorded, and the model told on its next call (see ``_record_refusal``)
        except providers.ProviderError as failure:
            error = str(failure)
            if not failure.retryable or attempt == attempts - 1 or _over_time(run, ctx) is not None:
                break
            time.sleep(delay)
            delay = min(delay * 2, 30)
    return f"{model['provider']} model {model['name']!r} failed after {attempt + 1} attempt(s): {error}"


def _record_model(run: Run, outcome: providers.Completion | providers.ReplyRefused | str) -> Plan:
    """Record the model's answer (its proposed tool calls, or the run's answer), then plan the next step."""
    ctx = context(run)
    if isinstance(outcome, str):
        _error_step(run, outcome)
        _finish(run, RunStatus.FAILED, error=outcome)
        return STOP
    if isinstance(outcome, providers.ReplyRefused):
        return _record_refusal(run, ctx, outcome)
    tokens = outcome.input_tokens + outcome.output_tokens
    cost = _cost(ctx, outcome.input_tokens, outcome.output_tokens)
    llm, *_ = _add_steps(run, [
        (StepKind.LLM_CALL, StepStatus.SUCCEEDED,
         {"tokens": tokens, "cost": cost, "detail": {"message": outcome.message, "input_tokens": outcome.input_tokens,
                                                     "output_tokens": outcome.output_tokens}}),
        *((StepKind.TOOL_CALL, StepStatus.PROPOSED,
           {"call_id": call.id, "arguments": call.arguments,
            "detail": {"tool_name": call.name, "raw_arguments": call.raw_arguments[:4000]}})
          for call in outcome.tool_calls),
    ])  # fmt: skip
    run.steps_used, run.tokens_used, run.cost_used = run.steps_used + 1, run.tokens_used + tokens, run.cost_used + cost
    _save(run, "steps_used", "tokens_used", "cost_used")
    calls = [call.name for call in outcome.tool_calls]
    audit_record(actor=run_actor(run), action="agent.model.called", target=llm,
                 details={"tokens": tokens, "cost": str(cost), "tool_calls": calls})  # fmt: skip
    _progress(run)
    if not outcome.tool_calls:
        _answer(run, ctx, outcome.text)
        return STOP
    return _then_plan(run)


def _record_refusal(run: Run, ctx: Context, refused: providers.ReplyRefused) -> Plan:
    """A reply nothing may act on (``agents.replies``): a failed ``llm_call`` step saying why, nothing of it done,
    the model told on its next call (see ``conversation``), within the run's budgets. The run fails once more
    replies in a row were refused than the model's ``max_retries``."""
    tokens = refused.input_tokens + refused.output_tokens
    cost = _cost(ctx, refused.input_tokens, refused.output_tokens)
    detail = {"reply": refused.excerpt, "input_tokens": refused.input_tokens, "output_tokens": refused.output_tokens}
    error = f"reply refused: {refused}"
    step = _add_step(run, StepKind.LLM_CALL, StepStatus.FAILED, tokens=tokens, cost=cost, detail=detail, error=error)
    run.steps_used, run.tokens_used, run.cost_used = run.steps_used + 1, run.tokens_used + tokens, run.cost_used + cost
    _save(run, "steps_used", "tokens_used", "cost_used")
    details = {"reason": str(refused), "tokens": tokens, "cost": str(cost)}
    audit_record(actor=run_actor(run), action="agent.model.refused", target=step, details=details)
    _progress(run)
    model = ctx.spec["model"]
    in_a_row = replies.refused_in_a_row([s.status for s in _steps(run) if s.kind == StepKind.LLM_CALL])
    if in_a_row > int(model.get("max_retries", 3)):
        label = f"{model['provider']} model {model['name']!r}"
        failed = f"{label}: {in_a_row} replies in a row were refused; the last: {refused}"
        _error_step(run, failed)
        _finish(run, RunStatus.FAILED, error=failed)
        return STOP
    return _then_plan(run)


def _answer(run: Run, ctx: Context, text: str) -> None:
    facts = {"text": text, "channel": "run", "persona": "", "agent": run.agent.slug}
    decision = guardrail_check(checkpoint="output", facts=facts, policy_refs=ctx.policies, actor=run_actor(run),
                               target=run)  # fmt: skip
    if decision.effect in ("deny", "escalate", "require_approval"):
        _add_step(run, StepKind.GUARDRAIL, StepStatus.DENIED, detail={"checkpoint": "output", **decision.as_dict()},
                  error="; ".join(decision.reasons))  # fmt: skip
        _finish(
            run, RunStatus.FAILED, error=f"The output guardrails decided {decision.effect}: the answer is withheld."
        )
        return
    if decision.effect == "redact":
        kinds = [kind for kind in decision.redact if kind in detectors.KINDS]
        text = detectors.redact(text, detectors.detect(text, kinds), kinds)
        _add_step(run, StepKind.GUARDRAIL, StepStatus.SUCCEEDED, detail={"checkpoint": "output", **decision.as_dict()})
    _add_step(run, StepKind.MESSAGE, StepStatus.SUCCEEDED, detail={"text": text})
    _finish(run, RunStatus.SUCCEEDED, result={"answer": text})


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


def _record_tool(run: Run, step: Step, result: Any, failure: str) -> Plan:
    """Record the tool call's outcome, then plan the next step."""
    step.run = run
    step.status = StepStatus.FAILED if failure else StepStatus.SUCCEEDED
    step.result, step.error, step.finished_at = (None if failure else result), failure, timezone.now()
    step.save(update_fields=["status", "result", "error", "finished_at"])
    audit_record(actor=run_actor(run), action=f"agent.tool.{step.status}", target=step,
                 details={"tool": step.tool.name if step.tool else "", "error": failure,
                          "duration_ms": step.duration_ms})  # fmt: skip
    _progress(run)
    return _then_plan(run)


def advance(run_id: Any, owner: str) -> None:
    """Claim the run and advance it until it finishes, parks for a person, or its lease is lost."""
    if not _claim(run_id, owner):
        return
    memory, heartbeat = _Memory(), _Heartbeat(run_id, owner)
    try:
        next_plan = _in_transaction(run_id, owner, memory, _first_plan)
        while next_plan.kind != "stop":
            if next_plan.kind == "llm":
                assert memory.run is not None
                with heartbeat.during_call():
                    outcome = _call_model(memory.run, next_plan)
                next_plan = _in_transaction(run_id, owner, memory, functools.partial(_record_model, outcome=outcome))
            elif next_plan.kind == "tool":
                step = next_plan.step
                assert step is not None
                assert step.tool is not None
                assert memory.run is not None
                pinned = tool_versions.pinned(memory.run.version_id)[step.tool.name]
                try:
                    with heartbeat.during_call():
                        result, failure = execute(step.tool, pinned, step.arguments or {}, step.idempotency_key), ""
                except tools.ToolFailure as error:
                    result, failure = None, str(error)
                record = functools.partial(_record_tool, step=step, result=result, failure=failure)
                next_plan = _in_transaction(run_id, owner, memory, record)
            else:
                next_plan = _in_transaction(run_id, owner, memory, _plan)
    finally:
        heartbeat.close()
