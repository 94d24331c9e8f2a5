"""Every write to the audit trail goes through these functions."""

import contextlib
import datetime as dt
import functools
import json
import logging
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit import export, integrity, sinks, verification
from audit.context import Actor, current_correlation_id
from audit.models import AuditCheckpoint, AuditEvent

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


@dataclass(frozen=True)
class _Appended:
    """An appended event (its columns, ``sequence``, ``created_at`` and hashes included, and its details) and the
    newest checkpoint the append saw (sequence 0 and the first event's time when there is none yet): what decides
    whether the append also writes a checkpoint."""

    values: dict[str, Any]
    details: dict[str, Any]
    checkpoint_sequence: int
    checkpoint_at: dt.datetime

    def event(self) -> AuditEvent:
        event = AuditEvent(details=self.details, **self.values)
        event._state.adding = False
        event._state.db = connection.alias
        return event


# The chain's end, the newest checkpoint and (for a trail without one) the first event's time, in one statement.
_SQLITE_CHAIN_END = """
    SELECT (SELECT sequence FROM audit_auditevent ORDER BY sequence DESC LIMIT 1),
           (SELECT hash FROM audit_auditevent ORDER BY sequence DESC LIMIT 1),
           (SELECT sequence FROM audit_auditcheckpoint ORDER BY sequence DESC LIMIT 1),
           (SELECT created_at FROM audit_auditcheckpoint ORDER BY sequence DESC LIMIT 1),
           (SELECT created_at FROM audit_auditevent ORDER BY sequence LIMIT 1)"""


def _sqlite_time(value: str | dt.datetime | None, default: dt.datetime) -> dt.datetime:
    """SQLite keeps naive UTC text (read back as text or as a naive datetime, as the column is typed)."""
    if value is None:
        return default
    naive = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return naive.replace(tzinfo=dt.UTC)


def _append_in_python(entries: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[_Appended]:
    """SQLite: every transaction begins ``IMMEDIATE`` (settings), holding the database's single write
    lock, so reading the chain's end and appending cannot interleave with another writer."""
    with connection.cursor() as cursor:
        cursor.execute(_SQLITE_CHAIN_END)
        last_sequence, last_hash, checkpoint_sequence, checkpoint_at, first_at = cursor.fetchone()
    appended = []
    for values, details in entries:
        values["sequence"] = last_sequence = (last_sequence or 0) + 1
        values["created_at"] = now = timezone.now()
        values["prev_hash"] = last_hash or integrity.GENESIS_HASH
        values["hash"] = last_hash = integrity.event_hash(values)
        first_at = first_at or now
        seen_at = checkpoint_at if checkpoint_sequence is not None else first_at
        appended.append(_Appended(values, details, checkpoint_sequence or 0, _sqlite_time(seen_at, now)))
    AuditEvent.objects.bulk_create([AuditEvent(details=entry.details, **entry.values) for entry in appended])
    return appended


def _postgresql_arguments(entries: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """The events as ``audit_append_many`` takes them (migration 0005): a JSON array of its arguments."""
    arguments = [
        [
            *integrity.canonical_parts(values),
            *(values[name] for name in _POSTGRESQL_COLUMNS),
            integrity.canonical_json(details),
            values["details_digest"],
            str(values["correlation_id"]),
            values["seal"],
        ]
        for values, details in entries
    ]
    return json.dumps(arguments, ensure_ascii=False)


def _postgresql_appended(entries: list[tuple[dict[str, Any], dict[str, Any]]], rows: list[Any]) -> list[_Appended]:
    appended = []
    for (values, details), row in zip(entries, rows, strict=True):
        sequence, created_at, prev_hash, chain_hash, checkpoint_sequence, checkpoint_at = row
        stored = {**values, "sequence": sequence, "created_at": created_at, "prev_hash": prev_hash, "hash": chain_hash}
        appended.append(_Appended(stored, details, checkpoint_sequence, checkpoint_at))
    return appended


def _append_in_postgresql(entries: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[_Appended]:
    """One call to ``audit_append_many`` (migrations 0004 and 0005): under the chain's lock, each event's end of
    the chain and newest checkpoint read, hashed and inserted, every event in one round trip."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM audit_append_many(%s::jsonb)", [_postgresql_arguments(entries)])
        return _postgresql_appended(entries, cursor.fetchall())


_POSTGRESQL_COLUMNS = ("actor_type", "actor_id", "actor_label", "action", "target_type", "target_id", "target_label")


def _checkpoint_is_due(appended: _Appended) -> bool:
    """Every ``AUDIT_CHECKPOINT_EVERY_EVENTS`` events, and at the first append ``AUDIT_CHECKPOINT_INTERVAL``
    seconds after the newest checkpoint (beat covers a trail nobody appends to)."""
    sequence, created_at = appended.values["sequence"], appended.values["created_at"]
    if sequence - appended.checkpoint_sequence >= settings.AUDIT_CHECKPOINT_EVERY_EVENTS:
        return True
    return (created_at - appended.checkpoint_at).total_seconds() >= settings.AUDIT_CHECKPOINT_INTERVAL


@dataclass(frozen=True)
class _Queued:
    """An event ``audit_record`` was asked for while an ``AuditBatch`` collects: its target is read as the batch
    is appended (a step inserted in the meantime has its id by then)."""

    actor: Actor
    action: str
    target: "models.Model | Target | None"
    details: dict[str, Any]
    correlation_id: uuid.UUID


_collecting: ContextVar["list[_Queued] | None"] = ContextVar("steward_audit_batch", default=None)


class AuditBatch:
    """Events recorded while ``collecting()`` are queued here instead of appended, and ``append()`` appends them
    all, in order, in one call (on PostgreSQL one statement), inside the caller's transaction. For code that
    decides before it writes (the agent runtime): what it records belongs to the transaction that writes the rest.
    An event of the batch is appended only if ``append()`` is called; its ``audit_record`` returns it unsaved."""

    def __init__(self) -> None:
        self.queued: list[_Queued] = []
        self._pending: list[tuple[dict[str, Any], dict[str, Any]]] = []

    @contextlib.contextmanager
    def collecting(self) -> Iterator[None]:
        token = _collecting.set(self.queued)
        try:
            yield
        finally:
            _collecting.reset(token)

    def _entries(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [_entry(q.actor, q.action, q.target, q.details, q.correlation_id) for q in self.queued]

    def append(self) -> None:
        """Append the queued events (they stay queued: the caller clears them once its transaction committed, so
        that a transaction that failed can be tried again)."""
        entries = self._entries()
        if entries:
            _append(entries)

    def postgresql_arguments(self) -> str:
        """For a statement of the caller's own that appends the queued events on PostgreSQL, in the same round
        trip as its other writes: the argument of ``audit_append_many`` (see ``appended``)."""
        self._pending = self._entries()
        return _postgresql_arguments(self._pending)

    def appended(self, rows: list[Any]) -> None:
        """What ``audit_append_many`` returned for ``postgresql_arguments``, committed already with the caller's
        statement: a checkpoint that is due is signed in a transaction of its own right after."""
        if rows:
            last = _postgresql_appended(self._pending, rows)[-1]
            if _checkpoint_is_due(last):
                with transaction.atomic():
                    _checkpoint_sign(sequence=last.values["sequence"], chain_hash=last.values["hash"])


def _entry(
    actor: Actor, action: str, target: "models.Model | Target | None", details: dict[str, Any], cid: uuid.UUID
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An event's columns (sealed) and its details, as the append stores them."""
    subject = Target.of(target)
    values: dict[str, Any] = {
        "actor_type": actor.type,
        "actor_id": actor.id,
        "actor_label": actor.label[:200],
        "action": action,
        "target_type": subject.type,
        "target_id": str(subject.id)[:64],
        "target_label": subject.label[:200],
        "details_digest": integrity.details_digest(details),
        "correlation_id": cid,
    }
    values["seal"] = _sealer()(integrity.seal_text(values))
    return values, details


def _append(entries: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[_Appended]:
    """Append the events in order, signing a checkpoint after the last when one is due."""
    with transaction.atomic(savepoint=False):
        append = _append_in_postgresql if connection.vendor == "postgresql" else _append_in_python
        appended = append(entries)
        last = appended[-1].values
        if _checkpoint_is_due(appended[-1]):
            _checkpoint_sign(sequence=last["sequence"], chain_hash=last["hash"])
    return appended


def audit_record(
    *,
    actor: Actor,
    action: str,
    target: "models.Model | Target | None" = None,
    details: dict[str, Any] | None = None,
    correlation_id: uuid.UUID | None = None,
) -> AuditEvent:
    """Append one event to the trail, inside the caller's transaction; or, while an ``AuditBatch`` is collecting,
    queue it there (the event returned is not saved yet: the batch appends it with the others).

    ``action`` is namespaced (``persona.version.released``). ``details`` must never hold secrets. The
    chain stays locked until the caller's transaction ends (an advisory lock on PostgreSQL, the write
    lock on SQLite), so concurrent appends queue up and the chain neither forks nor leaves gaps; a
    rolled-back caller leaves no event behind. Each event is sealed with a key the database never sees, and
    every ``AUDIT_CHECKPOINT_EVERY_EVENTS`` events (or ``AUDIT_CHECKPOINT_INTERVAL`` seconds) the append also
    signs a checkpoint of itself, stored in the same transaction and sent to the external sinks after commit.
    """
    if "." not in action:
        raise ValueError(f"audit action {action!r} must be namespaced, like 'agent.run.started'")
    clean_details = integrity.normalise_details(details)
    cid = correlation_id or current_correlation_id()
    batch = _collecting.get()
    if batch is not None:
        batch.append(_Queued(actor, action, target, clean_details, cid))
        return AuditEvent(action=action, details=clean_details, correlation_id=cid)
    [appended] = _append([_entry(actor, action, target, clean_details, cid)])
    return appended.event()


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


@functools.cache
def _sealer_for(key: str) -> integrity.Sealer:
    return integrity.Sealer(integrity.seal_key(key))


def _sealer() -> integrity.Sealer:
    return _sealer_for(settings.AUDIT_CHECKPOINT_KEY)


def _checkpoint_sign(*, sequence: int, chain_hash: str) -> AuditCheckpoint:
    """Store a signed checkpoint of event ``sequence``; once the transaction commits, log it and send it to the
    external sinks (``AUDIT_CHECKPOINT_SINK``), where whoever rewrites the database cannot reach it."""
    created_at = timezone.now()
    checkpoint = AuditCheckpoint.objects.create(
        sequence=sequence,
        hash=chain_hash,
        created_at=created_at,
        signature=integrity.checkpoint_signature(
            settings.AUDIT_CHECKPOINT_KEY, sequence=sequence, chain_hash=chain_hash, created_at=created_at
        ),
    )
    line = _checkpoint_record(checkpoint).as_line()
    transaction.on_commit(functools.partial(_checkpoint_publish, line), robust=True)
    return checkpoint


def _checkpoint_publish(line: str) -> None:
    logger.info("audit checkpoint %s", line)
    sinks.publish(line)


@transaction.atomic
def audit_checkpoint_write(*, actor: Actor) -> AuditCheckpoint | None:
    """Sign the current chain head and store it; after commit also log it and send it to the external sinks.

    Returns ``None`` when the trail is still empty.
    """
    head = AuditEvent.objects.order_by("-sequence").values_list("sequence", "hash").first()
    if head is None:
        return None
    sequence, chain_hash = head
    checkpoint = _checkpoint_sign(sequence=sequence, chain_hash=chain_hash)
    audit_record(
        actor=actor,
        action="audit.checkpoint.written",
        target=checkpoint,
        details={"sequence": sequence, "hash": chain_hash},
    )
    return checkpoint


_ROW_SQL = {
    "postgresql": """
        SELECT action, actor_id, actor_label, actor_type, correlation_id::text,
               to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
               details_digest, prev_hash, sequence, target_id, target_label, target_type,
               details, redacted_at IS NOT NULL, hash, seal
        FROM audit_auditevent ORDER BY sequence""",
    "sqlite": """
        SELECT action, actor_id, actor_label, actor_type, correlation_id, created_at,
               details_digest, prev_hash, sequence, target_id, target_label, target_type,
               details, redacted_at IS NOT NULL, hash, seal
        FROM audit_auditevent ORDER BY sequence""",
}


def _sqlite_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """SQLite gives 32 hex digits and a naive UTC datetime: make them the canonical text."""
    correlation_id = str(uuid.UUID(row[4]))
    created_at = integrity.timestamp(row[5].replace(tzinfo=dt.UTC))
    return (*row[:4], correlation_id, created_at, *row[6:13], bool(row[13]), row[14], row[15])


def _event_rows() -> Iterator[tuple[Any, ...]]:
    """Every event as ``integrity.ROW_FIELDS``, in sequence order, streamed in chunks."""
    with connection.chunked_cursor() as cursor:
        cursor.execute(_ROW_SQL[connection.vendor])
        while rows := cursor.fetchmany(10_000):
            if connection.vendor == "sqlite":
                yield from map(_sqlite_row, rows)
            else:
                yield from rows


def _checkpoint_record(row: AuditCheckpoint) -> integrity.CheckpointRecord:
    return integrity.CheckpointRecord(
        label=f"checkpoint {row.pk}",
        sequence=row.sequence,
        hash=row.hash,
        created_at=row.created_at,
        signature=row.signature,
    )


def _external(path: Path | None) -> verification.External | None:
    path = path or sinks.configured_file()
    if path is None:
        return None
    found = sinks.read_checkpoints(path)
    return verification.External(
        path=str(path), records=found.records, problems=found.problems, missing=not found.exists
    )


def checkpoint_window() -> verification.Window:
    """Fewer than ``AUDIT_CHECKPOINT_EVERY_EVENTS`` events after the newest checkpoint, and that checkpoint at
    most twice ``AUDIT_CHECKPOINT_INTERVAL`` old: one missed beat is tolerated, not two."""
    return verification.Window(
        events=settings.AUDIT_CHECKPOINT_EVERY_EVENTS, seconds=2.0 * settings.AUDIT_CHECKPOINT_INTERVAL
    )


def audit_chain_verify(*, actor: Actor, checkpoints: Path | None = None) -> verification.Verification:
    """Recompute the whole chain and check every checkpoint, the database's and those in the file
    ``checkpoints`` (by default the configured file sink); record who verified and what was found."""
    result = verification.verify(
        _event_rows(),
        map(_checkpoint_record, AuditCheckpoint.objects.order_by("sequence")),
        key=settings.AUDIT_CHECKPOINT_KEY,
        window=checkpoint_window(),
        external=_external(checkpoints),
    )
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="audit.chain.verified" if result.ok else "audit.chain.broken",
            target=Target(type="audit.chain", label="audit trail"),
            details={key: value for key, value in result.as_dict().items() if key != "last_hash"},
        )
    return result


@dataclass(frozen=True)
class AuditExport:
    format: export.ExportFormat
    rows: int
    up_to_sequence: int
    content: Iterator[bytes]

    @property
    def content_type(self) -> str:
        return export.CONTENT_TYPES[self.format]

    @property
    def filename(self) -> str:
        return f"audit-events-to-{self.up_to_sequence}.{self.format}"


def audit_export(
    *, actor: Actor, events: QuerySet[AuditEvent], fmt: export.ExportFormat, filters: dict[str, Any], via: str
) -> AuditExport:
    """Export ``events`` (a filtered queryset) as CSV or JSON Lines; record who exported what, and how many rows.

    The file is a snapshot: the events up to the chain's head when the export starts, in sequence order. The
    trail only grows, so exactly the rows counted are sent, and the export's own event is not among them. It
    is recorded (``audit.trail.exported``: format, filters, rows, last sequence) before the first byte is sent,
    so an interrupted download is recorded too. The content is read from the database as it is consumed.
    """
    head = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
    snapshot = events.filter(sequence__lte=head)
    rows = snapshot.count()
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="audit.trail.exported",
            target=Target(type="audit.chain", label="audit trail"),
            details={"format": str(fmt), "filters": filters, "rows": rows, "up_to_sequence": head, "via": via},
        )
    return AuditExport(format=fmt, rows=rows, up_to_sequence=head, content=export.stream(snapshot, fmt))
