"""The audit trail: append-only, hash-chained events and signed checkpoints of the chain head."""

import json
from typing import Any, NoReturn

from django.db import models

from audit.integrity import canonical_json


class AuditTrailImmutable(Exception):
    """Raised on any attempt to change or delete audit records through the ORM."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AuditTrailImmutable("the audit trail is append-only: updates are refused")

    def delete(self) -> NoReturn:
        raise AuditTrailImmutable("the audit trail is append-only: deletions are refused")


class AuditEventQuerySet(AppendOnlyQuerySet):
    def redact(self, *, when: Any) -> int:
        """The one permitted change: blank the details, keep their digest. Only ``audit_event_redact`` calls it."""
        return super(AppendOnlyQuerySet, self).update(details={}, redacted_at=when)


class CanonicalJSONField(models.TextField):
    """JSON kept as the exact canonical text that its digest covers (sorted keys, no spaces, UTF-8).

    Verification then hashes the stored text as it is, with no parsing and re-serialising, and any edit of
    the text, even one a JSON column would normalise away, changes the digest.
    """

    # What django-stubs reads for the Python types the field accepts and returns.
    _pyi_private_set_type: Any
    _pyi_private_get_type: Any

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        return None if value is None else json.loads(value)

    def to_python(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def get_prep_value(self, value: Any) -> str | None:
        return None if value is None else canonical_json(value)


class AppendOnlyModel(models.Model):
    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditTrailImmutable(f"{self._meta.verbose_name} records are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AuditTrailImmutable(f"{self._meta.verbose_name} records are append-only")


class AuditEvent(AppendOnlyModel):
    """One entry of the trail. Written only by ``audit.services.audit_record``."""

    sequence = models.BigIntegerField(primary_key=True)
    created_at = models.DateTimeField(db_index=True)
    actor_type = models.CharField(max_length=16)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    details = CanonicalJSONField(default=dict)
    details_digest = models.CharField(max_length=64)
    correlation_id = models.UUIDField(db_index=True)
    redacted_at = models.DateTimeField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    # A MAC of the event's content under a key the database never sees (``integrity.Sealer``); empty on
    # events appended before seals began.
    seal = models.CharField(max_length=32, blank=True, default="")

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-sequence"]
        default_permissions = ("view",)
        permissions = [
            ("verify_auditevent", "Can verify the audit trail"),
            ("export_auditevent", "Can export the audit trail"),
        ]
        indexes = [
            models.Index(fields=["actor_type", "actor_id"], name="audit_actor_idx"),
            models.Index(fields=["target_type", "target_id"], name="audit_target_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} by {self.actor_label}"


class AuditCheckpoint(AppendOnlyModel):
    """A chain head signed with ``settings.AUDIT_CHECKPOINT_KEY``: reveals a truncated or rewritten trail."""

    sequence = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    signature = models.CharField(max_length=64)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-sequence"]
        default_permissions = ("view",)
        indexes = [models.Index(fields=["sequence"], name="audit_checkpoint_seq_idx")]

    def __str__(self) -> str:
        return f"checkpoint at event {self.sequence}"
