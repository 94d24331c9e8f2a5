"""The chain's arithmetic: canonical JSON, event hashes, checkpoint signatures, and verification.

An event's hash is SHA-256 over the canonical JSON of its fields and the previous event's hash. The
details enter only as their own digest, so details can be redacted for retention while the chain still
verifies. Checkpoints sign a chain head with HMAC-SHA256 under ``settings.AUDIT_CHECKPOINT_KEY``.
"""

import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

GENESIS_HASH = "0" * 64


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 text as is: one text for one value."""
    return _CANONICAL.encode(value)


def normalise_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """Details as they will read back from the database: plain JSON types only."""
    return json.loads(json.dumps(details or {}, cls=DjangoJSONEncoder))


def details_digest(details: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(details).encode()).hexdigest()


def timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


# The columns, in order, that an event's hash covers (``details`` enters through ``details_digest``).
HASHED_FIELDS = (
    "sequence",
    "created_at",
    "actor_type",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "details_digest",
    "correlation_id",
    "prev_hash",
)

_quote = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses for strings


def canonical_event_parts(
    *,
    action: str,
    actor_id: str,
    actor_label: str,
    actor_type: str,
    correlation_id: str,
    details_digest: str,
    target_id: str,
    target_label: str,
    target_type: str,
) -> tuple[str, str, str]:
    """The event's canonical JSON, cut where the three values known only at append time go.

    ``head + created_at + middle + prev_hash + '","sequence":' + sequence + tail`` equals
    ``canonical_json`` of the hashed fields: keys in sorted order, which puts ``created_at`` before
    ``details_digest`` and ``prev_hash`` right before ``sequence``. Written out by hand because it is
    the hot path of appending and verifying; the tests pin it to ``canonical_json``.
    """
    head = (
        '{"action":' + _quote(action) + ',"actor_id":' + _quote(actor_id) + ',"actor_label":' + _quote(actor_label)
        + ',"actor_type":' + _quote(actor_type) + ',"correlation_id":' + _quote(correlation_id) + ',"created_at":"'
    )  # fmt: skip
    middle = '","details_digest":' + _quote(details_digest) + ',"prev_hash":"'
    tail = (
        ',"target_id":' + _quote(target_id) + ',"target_label":' + _quote(target_label)
        + ',"target_type":' + _quote(target_type) + "}"
    )  # fmt: skip
    return head, middle, tail


def chain_hash(parts: tuple[str, str, str], *, created_at: str, prev_hash: str, sequence: int) -> str:
    head, middle, tail = parts
    text = head + created_at + middle + prev_hash + '","sequence":' + str(sequence) + tail
    return hashlib.sha256(text.encode()).hexdigest()


def event_hash(values: dict[str, Any]) -> str:
    """The hash of an event given its hashed fields (``created_at`` a datetime or its canonical text)."""
    created_at = values["created_at"]
    parts = canonical_event_parts(
        action=values["action"],
        actor_id=values["actor_id"],
        actor_label=values["actor_label"],
        actor_type=values["actor_type"],
        correlation_id=str(values["correlation_id"]),
        details_digest=values["details_digest"],
        target_id=values["target_id"],
        target_label=values["target_label"],
        target_type=values["target_type"],
    )
    return chain_hash(
        parts,
        created_at=created_at if isinstance(created_at, str) else timestamp(created_at),
        prev_hash=values["prev_hash"],
        sequence=values["sequence"],
    )


def checkpoint_signature(key: str, *, sequence: int, chain_hash: str, created_at: dt.datetime) -> str:
    message = canonical_json({"sequence": sequence, "hash": chain_hash, "created_at": timestamp(created_at)})
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


@dataclass
class Verification:
    """The outcome of checking the chain and its checkpoints."""

    events_checked: int = 0
    checkpoints_checked: int = 0
    last_sequence: int = 0
    last_hash: str = GENESIS_HASH
    first_broken_sequence: int | None = None
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, sequence: int, problem: str) -> None:
        if self.first_broken_sequence is None or sequence < self.first_broken_sequence:
            self.first_broken_sequence = sequence
        self.problems.append(problem)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events_checked": self.events_checked,
            "checkpoints_checked": self.checkpoints_checked,
            "last_sequence": self.last_sequence,
            "last_hash": self.last_hash,
            "first_broken_sequence": self.first_broken_sequence,
            "problems": self.problems,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class CheckpointRecord:
    id: int
    sequence: int
    hash: str
    created_at: dt.datetime
    signature: str


# The row layout ``verify`` reads: every value as text, as the database returns it.
ROW_FIELDS = (
    "sequence",
    "created_at",  # canonical text: 2026-11-24T03:28:29.266456+00:00
    "actor_type",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "details",  # JSON text
    "details_digest",
    "correlation_id",  # canonical text, with dashes
    "redacted",  # bool
    "prev_hash",
    "hash",
)


def verify(rows: Iterable[Sequence[Any]], checkpoints: Iterable[CheckpointRecord], *, key: str) -> Verification:
    """Check ``rows`` (laid out as ``ROW_FIELDS``, ordered by sequence) and ``checkpoints``.

    Names the first broken sequence number: an edited event breaks its own hash, a deleted one leaves a
    gap, an inserted or reordered one breaks the link to its predecessor, a rewritten stretch disagrees
    with a signed checkpoint, and a truncated tail ends before the last checkpoint.
    """
    started = time.perf_counter()
    result = Verification()
    by_sequence: dict[int, list[CheckpointRecord]] = {}
    for checkpoint in checkpoints:
        result.checkpoints_checked += 1
        expected = checkpoint_signature(
            key, sequence=checkpoint.sequence, chain_hash=checkpoint.hash, created_at=checkpoint.created_at
        )
        if not hmac.compare_digest(expected, checkpoint.signature):
            result.fail(
                checkpoint.sequence,
                f"checkpoint {checkpoint.id} (event {checkpoint.sequence}) has an invalid signature: "
                "forged, altered, or signed with another key",
            )
            continue
        by_sequence.setdefault(checkpoint.sequence, []).append(checkpoint)

    expected_sequence = 1
    prev_hash = GENESIS_HASH
    broken = False
    for row in rows:
        (sequence, created_at, actor_type, actor_id, actor_label, action, target_type, target_id, target_label,
         details, digest, correlation_id, redacted, stored_prev_hash, stored_hash) = row  # fmt: skip
        if not broken:
            parts = canonical_event_parts(
                action=action,
                actor_id=actor_id,
                actor_label=actor_label,
                actor_type=actor_type,
                correlation_id=correlation_id,
                details_digest=digest,
                target_id=target_id,
                target_label=target_label,
                target_type=target_type,
            )
            if sequence != expected_sequence:
                missing = (
                    f"event {expected_sequence}"
                    if sequence == expected_sequence + 1
                    else f"events {expected_sequence}-{sequence - 1}"
                )
                result.fail(expected_sequence, f"{missing} missing: deleted from the trail")
            elif stored_prev_hash != prev_hash:
                result.fail(sequence, f"event {sequence} does not link to event {sequence - 1}: inserted or reordered")
            elif chain_hash(parts, created_at=created_at, prev_hash=prev_hash, sequence=sequence) != stored_hash:
                result.fail(sequence, f"event {sequence} does not match its hash: edited")
            elif not redacted and details_digest(json.loads(details)) != digest:
                result.fail(sequence, f"event {sequence} details do not match their digest: edited")
            broken = result.first_broken_sequence is not None
        if sequence in by_sequence:
            for checkpoint in by_sequence.pop(sequence):
                if checkpoint.hash != stored_hash:
                    result.fail(
                        sequence,
                        f"event {sequence} differs from signed checkpoint {checkpoint.id}: the chain was rewritten",
                    )
        result.events_checked += 1
        result.last_sequence = sequence
        result.last_hash = stored_hash
        prev_hash = stored_hash
        expected_sequence = sequence + 1

    beyond_tail = [sequence for sequence in by_sequence if sequence > result.last_sequence]
    if beyond_tail:
        sequence = max(beyond_tail)
        checkpoint = by_sequence[sequence][0]
        result.fail(
            result.last_sequence + 1,
            f"the trail ends at event {result.last_sequence} but signed checkpoint {checkpoint.id} covers "
            f"event {sequence}: events {result.last_sequence + 1}-{sequence} were truncated",
        )
    result.seconds = time.perf_counter() - started
    return result
