"""Every write to the audit trail goes through these functions."""

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from audit import integrity
from audit.context import Actor, current_correlation_id
from audit.models import AuditChainLock, AuditCheckpoint, AuditEvent

logger = logging.getLogger("steward.audit")


@dataclass(frozen=True)
class Target:
    """What an action was done to, when it is not a model instance."""

    type: str
    id: str = ""
    label: str = ""

    @classmethod
    def of(cls, obj: "models.Model | Target | None") -> "Target":
        if obj is None:
            return cls(type="")
        if isinstance(obj, Target):
            return obj
        return cls(type=obj._meta.label_lower, id=str(obj.pk), label=str(obj)[:200])


def _chain_end() -> tuple[int, str]:
    """Lock the chain and return its last sequence number and hash (0 and the genesis hash if empty)."""
    lock = AuditChainLock.objects.select_for_update().filter(pk=1)
    if not lock.values_list("pk", flat=True):
        AuditChainLock.objects.bulk_create([AuditChainLock(pk=1)], ignore_conflicts=True)
        lock.get()
    last = AuditEvent.objects.order_by("-sequence").values_list("sequence", "hash").first()
    return last or (0, integrity.GENESIS_HASH)


def audit_record(
    *,
    actor: Actor,
    action: str,
    target: "models.Model | Target | None" = None,
    details: dict[str, Any] | None = None,
    correlation_id: uuid.UUID | None = None,
) -> AuditEvent:
    """Append one event to the trail, inside the caller's transaction.

    ``action`` is namespaced (``persona.version.released``). ``details`` must never hold secrets. The
    chain stays locked until the caller's transaction ends, so concurrent appends queue up and the
    chain neither forks nor leaves gaps; a rolled-back caller leaves no event behind.
    """
    if "." not in action:
        raise ValueError(f"audit action {action!r} must be namespaced, like 'agent.run.started'")
    subject = Target.of(target)
    clean_details = integrity.normalise_details(details)
    with transaction.atomic(savepoint=False):
        last_sequence, last_hash = _chain_end()
        values: dict[str, Any] = {
            "sequence": last_sequence + 1,
            "created_at": timezone.now(),
            "actor_type": actor.type,
            "actor_id": actor.id,
            "actor_label": actor.label[:200],
            "action": action,
            "target_type": subject.type,
            "target_id": str(subject.id)[:64],
            "target_label": subject.label[:200],
            "details_digest": integrity.details_digest(clean_details),
            "correlation_id": correlation_id or current_correlation_id(),
            "prev_hash": last_hash,
        }
        values["hash"] = integrity.event_hash(values)
        return AuditEvent.objects.create(details=clean_details, **values)


@transaction.atomic
def audit_event_redact(*, actor: Actor, sequence: int, reason: str) -> AuditEvent:
    """Blank an event's details for retention. Its digest stays, so the chain still verifies."""
    if not reason.strip():
        raise ValueError("a reason is required to redact an audit event")
    event = AuditEvent.objects.get(sequence=sequence)
    if event.redacted_at is None:
        AuditEvent.objects.filter(sequence=sequence).redact(when=timezone.now())
    audit_record(
        actor=actor,
        action="audit.event.redacted",
        target=Target(type="audit.auditevent", id=str(sequence), label=str(event)),
        details={"reason": reason},
    )
    return AuditEvent.objects.get(sequence=sequence)


@transaction.atomic
def audit_checkpoint_write(*, actor: Actor) -> AuditCheckpoint | None:
    """Sign the current chain head and store it; also log it, so a copy lives outside the database.

    Returns ``None`` when the trail is still empty.
    """
    head = AuditEvent.objects.order_by("-sequence").values_list("sequence", "hash").first()
    if head is None:
        return None
    sequence, chain_hash = head
    created_at = timezone.now()
    checkpoint = AuditCheckpoint.objects.create(
        sequence=sequence,
        hash=chain_hash,
        created_at=created_at,
        signature=integrity.checkpoint_signature(
            settings.AUDIT_CHECKPOINT_KEY, sequence=sequence, chain_hash=chain_hash, created_at=created_at
        ),
    )
    audit_record(
        actor=actor,
        action="audit.checkpoint.written",
        target=checkpoint,
        details={"sequence": sequence, "hash": chain_hash},
    )
    logger.info(
        "audit checkpoint %s",
        integrity.canonical_json(
            {
                "sequence": sequence,
                "hash": chain_hash,
                "created_at": integrity.timestamp(created_at),
                "signature": checkpoint.signature,
            }
        ),
    )
    return checkpoint


def _events() -> Any:
    fields = ("details", "redacted_at", "hash", *integrity.HASHED_FIELDS)
    return AuditEvent.objects.order_by("sequence").values(*fields).iterator(chunk_size=5000)


def _checkpoints() -> list[integrity.CheckpointRecord]:
    return [
        integrity.CheckpointRecord(
            id=row.pk, sequence=row.sequence, hash=row.hash, created_at=row.created_at, signature=row.signature
        )
        for row in AuditCheckpoint.objects.order_by("sequence")
    ]


def audit_chain_verify(*, actor: Actor) -> integrity.Verification:
    """Recompute the whole chain and check every checkpoint; record who verified and what was found."""
    result = integrity.verify(_events(), _checkpoints(), key=settings.AUDIT_CHECKPOINT_KEY)
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="audit.chain.verified" if result.ok else "audit.chain.broken",
            target=Target(type="audit.chain", label="audit trail"),
            details={key: value for key, value in result.as_dict().items() if key != "last_hash"},
        )
    return result
