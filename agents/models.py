"""Tools, agent definitions (governed objects of kind ``agent``), runs and their steps.

A ``Run`` is one execution of a pinned agent version on an input. It is advanced by Celery tasks under a lease
(``lease_owner``/``lease_expires_at``), one step at a time, each step committed before the next begins; see
``agents.runtime``. ``Step`` rows are the run's timeline and its memory: the conversation with the model is
rebuilt from them.
"""

import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from governance.models import GovernedObject, KindManager, ReviewItem, Version

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class ToolKind(models.TextChoices):
    PYTHON = "python", "Python function"
    HTTP = "http", "HTTP endpoint"


class SideEffect(models.TextChoices):
    READ = "read", "read"
    WRITE = "write", "write"


class Tool(models.Model):
    """A capability an agent may be granted: the identity grants and steps refer to. Its definition (schema, risk,
    side effect, request...) is governed configuration of kind ``tool`` (``agents.tool_versions``), never stored
    here; an HTTP tool's secret header values are, encrypted, since no version may show them."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=ToolKind.choices, default=ToolKind.PYTHON)
    available = models.BooleanField(default=True, help_text="False when its code is gone (kept for the history).")
    secret_headers = models.TextField(blank=True, help_text="Encrypted; never shown again.")
    synced_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AgentDefinition(GovernedObject):
    """Agent definitions, for the console: governed objects of kind ``agent``."""

    objects: ClassVar[KindManager] = KindManager("agent")

    class Meta:
        proxy = True
        verbose_name = "agent definition"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    AWAITING_APPROVAL = "awaiting_approval", "awaiting approval"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"
    TIMED_OUT = "timed_out", "timed out"
    ROLLED_BACK = "rolled_back", "rolled back"


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED_RUN_STATUSES = (
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.TIMED_OUT,
    RunStatus.ROLLED_BACK,
)


class RunOutcome(models.TextChoices):
    """What a finished run achieved, apart from how it ended (``agents.outcomes`` decides it; docs/metrics.md)."""

    COMPLETED = "completed", "completed"
    NOT_COMPLETED = "not_completed", "not completed"
    ESCALATED = "escalated", "escalated"


class Run(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(GovernedObject, on_delete=models.PROTECT, related_name="runs")
    version = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="runs")
    label = models.CharField(max_length=40)
    policy_versions = models.JSONField(default=list, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runs")
    idempotency_key = models.CharField(max_length=200, blank=True)
    correlation_id = models.UUIDField(default=uuid.uuid4)
    origin = models.CharField(
        max_length=100,
        blank=True,
        help_text='What started it, when not an API client: "personas.conversation:<id>" for a persona\'s hand-off.',
    )
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    input = models.JSONField(default=dict)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    # NULL, not "": an unfinished run has no outcome yet, which is not one of the outcomes (the API says null).
    outcome = models.CharField(  # noqa: DJ001
        max_length=20,
        choices=RunOutcome.choices,
        null=True,
        blank=True,
        help_text="What the run achieved, set as it finishes; empty while it is not finished.",
    )
    outcome_reason = models.CharField(max_length=500, blank=True, help_text="Why the run has that outcome.")
    steps_used = models.PositiveIntegerField(default=0)
    tokens_used = models.PositiveIntegerField(default=0)
    cost_used = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    cancel_requested = models.BooleanField(default=False)
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    deliveries = models.PositiveIntegerField(default=0)
    parked_at = models.DateTimeField(null=True, blank=True, help_text="When it began waiting for a person.")
    swept_at = models.DateTimeField(null=True, blank=True, help_text="When the sweeper last sent it to a worker.")
    waited_seconds = models.FloatField(default=0, help_text="Time spent waiting for people (not in wall time).")
    budget_extensions = models.JSONField(
        default=dict, blank=True, help_text="What people added to the agent's budgets for this run, by budget."
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["requested_by", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="run_idempotency_key_unique",
            )
        ]
        indexes = [
            models.Index(fields=["status", "lease_expires_at"], name="run_status_lease_idx"),
            models.Index(fields=["agent", "-created_at"], name="run_agent_idx"),
            models.Index(fields=["requested_by", "-created_at"], name="run_requester_idx"),
            # The console's list, newest first (its order, with the key as the tie-breaker the admin adds).
            models.Index(fields=["-created_at", "-id"], name="run_created_idx"),
            # What a run remembers (``runtime._recall``): an agent's latest succeeded runs.
            models.Index(
                fields=["agent", "-finished_at"], condition=models.Q(status="succeeded"), name="run_memory_idx"
            ),
        ]
        permissions = [
            ("start_run", "Can start agent runs"),
            ("cancel_run", "Can cancel agent runs"),
            ("compensate_run", "Can compensate agent runs"),
        ]

    def __str__(self) -> str:
        return f"run {str(self.id)[:8]} of {self.agent.slug}"


class StepKind(models.TextChoices):
    LLM_CALL = "llm_call", "model call"
    TOOL_CALL = "tool_call", "tool call"
    GUARDRAIL = "guardrail", "guardrail"
    MEMORY = "memory", "memory"
    APPROVAL = "approval", "approval"
    MESSAGE = "message", "message"
    ERROR = "error", "error"


class StepStatus(models.TextChoices):
    PROPOSED = "proposed", "proposed"
    DENIED = "denied", "denied"
    AWAITING_APPROVAL = "awaiting_approval", "awaiting approval"
    EXECUTING = "executing", "executing"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    COMPENSATED = "compensated", "compensated"


class Step(models.Model):
    run = models.ForeignKey(Run, on_delete=models.PROTECT, related_name="steps")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=12, choices=StepKind.choices)
    status = models.CharField(max_length=20, choices=StepStatus.choices, default=StepStatus.SUCCEEDED)
    tool = models.ForeignKey(Tool, null=True, blank=True, on_delete=models.PROTECT, related_name="steps")
    call_id = models.CharField(max_length=100, blank=True, help_text="The model's id for this tool call.")
    arguments = models.JSONField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=100, blank=True)
    review = models.ForeignKey(ReviewItem, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    compensates = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="step_seq_unique")]
        indexes = [models.Index(fields=["tool", "status", "started_at"], name="step_tool_rate_idx")]

    def __str__(self) -> str:
        return f"{self.run} step {self.seq} ({self.kind})"

    @property
    def duration_ms(self) -> int | None:
        if self.finished_at is None:
            return None
        return int((self.finished_at - self.started_at).total_seconds() * 1000)
