"""Governed configuration and the review queue.

Every governed object (style guide, guardrail policy, persona, agent definition) is one
``GovernedObject`` row of some ``kind``: an editable ``draft`` and immutable numbered ``Version`` rows.
What a kind's spec looks like, and which checks gate its approval, is declared in
``governance.registry``. ``Label`` pointers say which approved version runs where; a ``Release`` moves
one or more of them as a unit and can be rolled back. ``ReviewItem`` is the one queue for everything a
person must decide.
"""

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone


class Risk(models.TextChoices):
    LOW = "low", "low"
    MEDIUM = "medium", "medium"
    HIGH = "high", "high"
    CRITICAL = "critical", "critical"


class GovernedObject(models.Model):
    kind = models.CharField(max_length=40)
    slug = models.SlugField(max_length=100)  # a tool's is its name, dots and all (``inventory.check_stock``)
    name = models.CharField(max_length=200)
    draft = models.JSONField(default=dict, blank=True)
    draft_updated_at = models.DateTimeField(default=timezone.now)
    draft_updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Everyone whose words are in the draft and not yet in an approved version: they may not approve or release it.
    draft_authors = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")

    class Meta:
        ordering = ["kind", "slug"]
        constraints = [models.UniqueConstraint(fields=["kind", "slug"], name="governed_kind_slug_unique")]
        verbose_name = "governed object"

    def __str__(self) -> str:
        return f"{self.kind.replace('_', ' ')} {self.slug}"


class VersionStatus(models.TextChoices):
    PENDING = "pending_review", "pending review"
    APPROVED = "approved", "approved"
    REJECTED = "rejected", "rejected"
    EXPIRED = "expired", "expired"


class Version(models.Model):
    """A frozen draft. Its spec and checksum never change; only its review status does."""

    object = models.ForeignKey(GovernedObject, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    spec = models.JSONField()
    checksum = models.CharField(max_length=64)
    # Who submitted it; empty for a submission by the system (a sync writing what code declares): then any
    # Approver may decide it. ``author_label`` names the submitter either way, readable after deletions.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    author_label = models.CharField(max_length=200, blank=True)
    # Whoever wrote any part of it that no approved version had: its submitter and every editor of its draft.
    authors = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    note = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=VersionStatus.choices, default=VersionStatus.PENDING)
    checks = models.JSONField(default=list, blank=True)
    # The versions of other governed objects this one is approved with (an agent version's tools), fixed on submit:
    # ``[{"kind", "slug", "version", "id", "checksum"}]``. Reviewed with it: the review digest covers them.
    pins = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["object", "-number"]
        constraints = [models.UniqueConstraint(fields=["object", "number"], name="version_number_unique")]
        permissions = [("submit_version", "Can submit drafts as versions for review")]

    def __str__(self) -> str:
        return f"{self.object} v{self.number}"

    @property
    def checks_passed(self) -> bool:
        return all(check.get("passed", False) for check in self.checks)


class Label(models.Model):
    """A release label (``staging``, ``production``, ...): points at one approved version per object."""

    name = models.SlugField(max_length=40, unique=True)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ReleaseKind(models.TextChoices):
    RELEASE = "release", "release"
    ROLLBACK = "rollback", "rollback"


class Release(models.Model):
    """One atomic move of one or more labels, with a note; rolled back as a unit."""

    kind = models.CharField(max_length=10, choices=ReleaseKind.choices, default=ReleaseKind.RELEASE)
    note = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    reverts = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="reverted_by")
    rolled_back_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("release_version", "Can release approved versions"),
            ("rollback_version", "Can roll releases and labels back to earlier approved versions"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"


class ReleaseMove(models.Model):
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="moves")
    object = models.ForeignKey(GovernedObject, on_delete=models.PROTECT, related_name="+")
    label = models.ForeignKey(Label, on_delete=models.PROTECT, related_name="+")
    from_version = models.ForeignKey(Version, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    to_version = models.ForeignKey(Version, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        def number(version: Version | None) -> str:
            return f"v{version.number}" if version else "nothing"

        return f"{self.object} {self.label}: {number(self.from_version)} → {number(self.to_version)}"


class LabelPointer(models.Model):
    """Label ``label`` of ``object`` points at ``version`` (set by ``release``)."""

    object = models.ForeignKey(GovernedObject, on_delete=models.PROTECT, related_name="pointers")
    label = models.ForeignKey(Label, on_delete=models.PROTECT, related_name="pointers")
    version = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="pointers")
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["object", "label"], name="label_pointer_unique")]

    def __str__(self) -> str:
        return f"{self.object} {self.label} → v{self.version.number}"


class ReviewKind(models.TextChoices):
    CONFIGURATION = "configuration", "configuration review"
    TOOL_APPROVAL = "tool_approval", "tool approval"
    HANDOVER = "handover", "conversation hand-over"
    BUDGET_OVERRUN = "budget_overrun", "budget overrun"


class ReviewStatus(models.TextChoices):
    PENDING = "pending", "pending"
    APPROVED = "approved", "approved"
    REJECTED = "rejected", "rejected"
    EXPIRED = "expired", "expired"
    WITHDRAWN = "withdrawn", "withdrawn"
    RESOLVED = "resolved", "resolved"  # handled by a person (a hand-over), rather than approved or rejected


class ReviewItem(models.Model):
    """Something a person must decide. The decision is bound to ``digest``: a hash of exactly what was shown."""

    kind = models.CharField(max_length=20, choices=ReviewKind.choices)
    subject_type = models.CharField(max_length=100)
    subject_id = models.CharField(max_length=64)
    subject_label = models.CharField(max_length=200)
    version = models.ForeignKey(Version, null=True, blank=True, on_delete=models.PROTECT, related_name="reviews")
    reason = models.TextField()
    raised_by = models.CharField(max_length=200)
    risk = models.CharField(max_length=10, choices=Risk.choices, default=Risk.MEDIUM)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_by_label = models.CharField(max_length=200)
    approvals_required = models.PositiveSmallIntegerField(default=1)
    payload = models.JSONField(default=dict)
    digest = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [
            models.Index(fields=["status", "due_at"], name="review_status_due_idx"),
            models.Index(fields=["kind", "status"], name="review_kind_status_idx"),
        ]
        permissions = [("decide_reviewitem", "Can decide review items")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject_label}"

    @property
    def overdue(self) -> bool:
        return self.status == ReviewStatus.PENDING and self.due_at < timezone.now()


class Decision(models.TextChoices):
    APPROVE = "approve", "approve"
    REJECT = "reject", "reject"
    RESOLVE = "resolve", "resolve"


class ReviewDecision(models.Model):
    item = models.ForeignKey(ReviewItem, on_delete=models.PROTECT, related_name="decisions")
    decider = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decider_label = models.CharField(max_length=200)
    decider_roles = models.CharField(max_length=200)
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["item", "decider"], name="one_decision_per_decider")]

    def __str__(self) -> str:
        return f"{self.decider_label} {self.decision}d {self.item}"


class KindManager(models.Manager[Any]):
    """The objects of one governed kind: the manager of each kind's proxy model (its console page)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def get_queryset(self) -> models.QuerySet[Any]:
        return super().get_queryset().filter(kind=self.kind)


class GuardrailPolicy(GovernedObject):
    """Guardrail policies, for the console: governed objects of kind ``guardrail_policy``."""

    objects: ClassVar[KindManager] = KindManager("guardrail_policy")

    class Meta:
        proxy = True
        verbose_name = "guardrail policy"
        verbose_name_plural = "guardrail policies"
