"""What one ``advance()`` works on while it holds a run's lease: a ``Session``.

A session is read once when the run is claimed (the run, its steps, the granted tools, and what the pinned agent
version fixes: spec, policies, tool versions) and then kept in memory: only the lease holder writes a running run's
steps. Deciding a step changes the session only (new steps, changed steps, run fields, audit events); ``commit()``
writes all of it in one transaction whose first statement is the run's UPDATE, guarded by the lease: 0 rows means
the lease was lost (or a cancellation arrived), and nothing of the step is written. So a step costs one transaction
of a handful of statements: the run's row, the new steps in one insert, each changed step, the audit events in one
append.
"""

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections, transaction
from django.db.models import Max
from django.utils import timezone

from agents import tool_versions
from agents.models import Run, RunStatus, Step, StepKind, StepStatus, Tool
from agents.runtime import postgresql, transitions
from audit.context import Actor, audit_context
from audit.services import AuditBatch
from governance import policies, selectors

if TYPE_CHECKING:
    from agents.runtime import lease

logger = logging.getLogger("steward.runtime")
# The pauses before each new attempt to record a step after a database error, within half a lease.
RETRY_PAUSES = (0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
IDS_RESERVED = 32  # step ids reserved at a time (PostgreSQL): a run of this benchmark's 11 steps needs 12


def run_actor(run: Run) -> Actor:
    return Actor(type="agent_run", id=str(run.pk), label=f"run {str(run.pk)[:8]} of {run.agent.slug}")


@dataclass(frozen=True)
class Context:
    """What the run's pinned agent version fixes, and what people added to its budgets."""

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


def context_of(run: Run) -> Context:
    """The context of a run: its pinned version's spec, policies and tool versions (immutable, read once a
    process), and its budget extensions."""
    refs = [
        policies.PolicyRef(slug=slug, version=number, spec=policy)
        for slug, number, policy in selectors.frozen_versions([p["id"] for p in run.policy_versions])
    ]
    spec = selectors.frozen_versions([run.version_id])[0][2]
    tools = tool_versions.pinned(run.version_id)
    return Context(spec=spec, policies=refs, extensions=run.budget_extensions, tools=tools)


def append_step(run: Run, kind: str, status: str, **fields: Any) -> Step:
    """A step numbered after the run's last, saved at once: for a run no session holds (a compensation)."""
    last = run.steps.aggregate(last=Max("seq"))["last"] or 0
    return Step.objects.create(run=run, seq=last + 1, kind=kind, status=status, **fields)


class LeaseLost(Exception):
    """The run's lease is someone else's now, or the run is no longer running: nothing of the step was written."""


@dataclass
class Mark:
    """What a session held before a decision, to go back to should the decision fail (see ``Session.restore``)."""

    steps: int
    new_steps: int
    audit: int
    in_commit: int
    run: dict[str, Any]
    pending: list[tuple[Step, dict[str, Any]]]
    run_fields: set[str]
    changed: dict[int, tuple[Step, set[str]]]


@dataclass(eq=False)
class Session:
    run: Run
    owner: str
    ctx: Context
    steps: list[Step]  # every step of the run, in seq order
    tools: dict[str, Tool]  # the granted tools that are available, by name
    actor: Actor
    audit: AuditBatch = field(default_factory=AuditBatch)
    new_steps: list[Step] = field(default_factory=list)  # added since the last commit
    changed: dict[int, tuple[Step, set[str]]] = field(default_factory=dict)  # saved steps changed since, by id()
    run_fields: set[str] = field(default_factory=set)  # the run's fields changed since
    in_commit: list[Callable[[], None]] = field(default_factory=list)  # writes that need the new steps' ids
    schemas: list[dict[str, Any]] | None = None  # the tools as the model is shown them, once made
    ids: list[int] = field(default_factory=list)  # step ids reserved for new steps (PostgreSQL)

    @classmethod
    def load(cls, claimed: "lease.Claimed", owner: str) -> "Session":
        """The run as its lease holder keeps it: the run, its steps and its granted tools. No transaction is needed
        to read them together: only the lease holder writes a running run's steps."""
        run = claimed.run
        ctx = context_of(run)
        steps = [] if claimed.first else list(run.steps.select_related("tool").order_by("seq"))
        tools = {tool.name: tool for tool in Tool.objects.filter(name__in=list(ctx.grants), available=True)}
        return cls(run=run, owner=owner, ctx=ctx, steps=steps, tools=tools, actor=run_actor(run), ids=claimed.ids)

    # --- changing it --------------------------------------------------------------------------------------------

    def add_step(self, kind: str, status: str, **fields: Any) -> Step:
        now = timezone.now()
        finished = None if status in (StepStatus.PROPOSED, StepStatus.EXECUTING) else now
        seq = self.steps[-1].seq + 1 if self.steps else 1
        step = Step(run=self.run, seq=seq, kind=kind, status=status, started_at=now, finished_at=finished, **fields)
        if postgresql.used():
            if not self.ids:
                self.ids = postgresql.reserve_ids(IDS_RESERVED)
            step.pk = self.ids.pop(0)
        self.steps.append(step)
        self.new_steps.append(step)
        return step

    def save_step(self, step: Step, *fields: str) -> None:
        """Write these fields of the step with the rest of this step's changes (a new step is inserted whole)."""
        if step._state.adding:
            return
        _, saved = self.changed.setdefault(id(step), (step, set()))
        saved.update(fields)

    def save_run(self, *fields: str) -> None:
        self.run_fields.update(fields)

    def progress(self) -> None:
        """A step is being committed: the run is making progress, so redeliveries start counting afresh."""
        if self.run.deliveries:
            self.run.deliveries = 0
            self.save_run("deliveries")

    def error_step(self, error: str) -> Step:
        return self.add_step(StepKind.ERROR, StepStatus.FAILED, error=error)

    def change(self, status: str) -> None:
        """Move the run to ``status`` (``transitions``), saved with the step."""
        self.save_run(*transitions.change(self.run, status))

    def finish(self, status: str, *, result: Any = None, error: str = "") -> None:
        """End the run with ``status``, its outcome from its steps; recorded and announced as the step commits."""
        self.save_run(*transitions.end(self.run, status, self.steps, result=result, error=error))
        transitions.record_end(self.run, self.actor)
        self.in_commit.extend(transitions.announcement(self.run))

    def decide(self, work: Callable[["Session"], Any]) -> Any:
        """``work`` on this session as the run's actor, its audit events kept for the commit."""
        with self.audit.collecting(), audit_context(actor=self.actor, correlation_id=self.run.correlation_id):
            return work(self)

    # --- going back ---------------------------------------------------------------------------------------------

    def mark(self) -> Mark:
        pending = [(step, dict(step.__dict__)) for step in self.steps if step.status in _MUTABLE]
        changed = {key: (step, set(fields)) for key, (step, fields) in self.changed.items()}
        counts = (len(self.steps), len(self.new_steps), len(self.audit.queued), len(self.in_commit))
        return Mark(
            *counts, run=dict(self.run.__dict__), pending=pending, run_fields=set(self.run_fields), changed=changed
        )

    def restore(self, mark: Mark) -> None:
        """Forget every change since ``mark`` (a decision that failed half-way)."""
        del self.steps[mark.steps :], self.new_steps[mark.new_steps :]
        del self.audit.queued[mark.audit :], self.in_commit[mark.in_commit :]
        self.run.__dict__.update(mark.run)
        for step, state in mark.pending:
            step.__dict__.update(state)
        self.run_fields, self.changed = mark.run_fields, mark.changed

    # --- writing it ---------------------------------------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        return bool(self.new_steps or self.changed or self.run_fields or self.audit.queued or self.in_commit)

    def commit(self) -> None:
        """Write what was decided since the last commit in one transaction; ``LeaseLost`` when the lease is gone
        (nothing written). A cancellation that arrived meanwhile is taken in (``run.cancel_requested``).

        A database error (a connection lost, a backend terminated) is retried on a fresh connection for as long as
        the lease lasts: what was decided is still here, so a call that completed is recorded, not thrown away."""
        deadline, pauses = time.monotonic() + settings.AGENTS_LEASE_SECONDS / 2, iter(RETRY_PAUSES)
        while True:
            try:
                self._write()
                break
            except (OperationalError, InterfaceError):
                pause = next(pauses, None)
                if pause is None or time.monotonic() + pause > deadline:
                    raise
                logger.warning("run %s: recording a step failed; retrying on a fresh connection", self.run.pk)
                connections[Step.objects.db].close()
                time.sleep(pause)
        self.audit.queued.clear()
        self.new_steps, self.changed, self.run_fields, self.in_commit = [], {}, set(), []

    def _write(self) -> None:
        fields = self._run_fields()
        if postgresql.used() and postgresql.fits(self) and not self.in_commit:
            self._write_in_one_statement(fields)
        elif postgresql.used() and postgresql.fits(self):
            with transaction.atomic():  # with what needs the step's ids, whose own events follow the step's
                self._write_in_one_statement(fields)
                with audit_context(actor=self.actor, correlation_id=self.run.correlation_id):
                    for write in self.in_commit:
                        write()
        else:
            with transaction.atomic():
                self._write_run(fields)
                self._insert_steps()
                for step, changed in self.changed.values():
                    step.save(update_fields=sorted(changed))
                if self.in_commit:
                    self.decide(lambda session: [write() for write in session.in_commit])
                self.audit.append()
        for step in self.new_steps:
            step._state.adding, step._state.db = False, Step.objects.db

    def _write_in_one_statement(self, fields: set[str]) -> None:
        state = postgresql.write(self, fields)
        if state == "lost":
            raise LeaseLost(f"the lease of run {self.run.pk} is no longer {self.owner}'s")
        self.run.cancel_requested = self.run.cancel_requested or state == "cancel"

    def _run_fields(self) -> set[str]:
        """The run's fields to write: those changed, and a renewed lease while it runs."""
        run, now = self.run, timezone.now()
        if self.run_fields:
            run.updated_at = now
            self.run_fields.add("updated_at")
        if run.status == RunStatus.RUNNING:
            run.lease_expires_at = now + dt.timedelta(seconds=settings.AGENTS_LEASE_SECONDS)
            self.run_fields.add("lease_expires_at")
        return set(self.run_fields)

    def _write_run(self, fields: set[str]) -> None:
        """The run's fields in one UPDATE guarded by the lease (and by no cancellation having arrived; when one
        has, it is taken in and the UPDATE made without that guard)."""
        run = self.run
        values = {name: getattr(run, name) for name in fields}
        held = Run.objects.filter(pk=run.pk, lease_owner=self.owner, status=RunStatus.RUNNING)
        if held.filter(cancel_requested=run.cancel_requested).update(**values):
            return
        if not run.cancel_requested and held.filter(cancel_requested=True).update(**values):
            run.cancel_requested = True
            return
        raise LeaseLost(f"the lease of run {run.pk} is no longer {self.owner}'s")

    def _insert_steps(self) -> None:
        """The new steps in one insert where the database gives their ids back (PostgreSQL, SQLite 3.35+)."""
        if len(self.new_steps) > 1 and connections[Step.objects.db].features.can_return_rows_from_bulk_insert:
            Step.objects.bulk_create(self.new_steps)
        else:
            for step in self.new_steps:
                step.save(force_insert=True)


# The statuses of steps a decision may change (see ``Session.mark``).
_MUTABLE = (StepStatus.PROPOSED, StepStatus.EXECUTING, StepStatus.AWAITING_APPROVAL)
