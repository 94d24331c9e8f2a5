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


# The fields an event's hash covers, in the sorted-key order of its canonical JSON. ``details`` enters
# through ``details_digest``, so redacting details leaves the hash intact.
HASHED_FIELDS = (
    "action",
    "actor_id",
    "actor_label",
    "actor_type",
    "correlation_id",
    "created_at",
    "details_digest",
    "prev_hash",
    "sequence",
    "target_id",
    "target_label",
    "target_type",
)

_quote = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses for strings
_SLOT = "\x00"  # never produced by _quote, which escapes control characters


def canonical_text(
    action: str,
    actor_id: str,
    actor_label: str,
    actor_type: str,
    correlation_id: str,
    created_at: str,
    details_digest: str,
    prev_hash: str,
    sequence: int | str,
    target_id: str,
    target_label: str,
    target_type: str,
) -> str:
    """``canonical_json`` of the hashed fields (arguments in ``HASHED_FIELDS`` order), written out by hand.

    It is the hot path of appending and verifying; the tests pin it to ``canonical_json``. ``correlation_id``,
    ``created_at`` (``2026-11-24T03:28:29.266456+00:00``), ``details_digest`` and ``prev_hash`` (hex) are
    canonical text that needs no escaping.
    """
    return (
        '{"action":' + _quote(action) + ',"actor_id":' + _quote(actor_id) + ',"actor_label":' + _quote(actor_label)
        + ',"actor_type":' + _quote(actor_type) + ',"correlation_id":"' + correlation_id + '","created_at":"'
        + created_at + '","details_digest":"' + details_digest + '","prev_hash":"' + prev_hash + '","sequence":'
        + str(sequence) + ',"target_id":' + _quote(target_id) + ',"target_label":' + _quote(target_label)
        + ',"target_type":' + _quote(target_type) + "}"
    )  # fmt: skip


def canonical_parts(values: dict[str, Any]) -> tuple[str, str, str, str]:
    """The canonical text cut where ``created_at``, ``prev_hash`` and ``sequence`` go, for whoever fills
    them in at append time (the PostgreSQL ``audit_append`` function)."""
    text = canonical_text(
        values["action"], values["actor_id"], values["actor_label"], values["actor_type"],
        str(values["correlation_id"]), _SLOT, values["details_digest"], _SLOT, _SLOT,
        values["target_id"], values["target_label"], values["target_type"],
    )  # fmt: skip
    head, middle, between, tail = text.split(_SLOT)
    return head, middle, between, tail


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def event_hash(values: dict[str, Any]) -> str:
    """The hash of an event given its hashed fields (``created_at`` a datetime or its canonical text)."""
    created_at = values["created_at"]
    return text_hash(
        canonical_text(
            values["action"],
            values["actor_id"],
            values["actor_label"],
            values["actor_type"],
            str(values["correlation_id"]),
            created_at if isinstance(created_at, str) else timestamp(created_at),
            values["details_digest"],
            values["prev_hash"],
            values["sequence"],
            values["target_id"],
            values["target_label"],
            values["target_type"],
        )
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


# The row layout ``verify`` reads, every value as the canonical text: the hashed fields first, in order.
ROW_FIELDS = (*HASHED_FIELDS, "details", "redacted", "hash")


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
    sha256 = hashlib.sha256
    for row in rows:
        sequence, details, redacted, stored_hash = row[8], row[12], row[13], row[14]
        if not broken:
            if sequence != expected_sequence:
                missing = (
                    f"event {expected_sequence}"
                    if sequence == expected_sequence + 1
                    else f"events {expected_sequence}-{sequence - 1}"
                )
                result.fail(expected_sequence, f"{missing} missing: deleted from the trail")
            elif row[7] != prev_hash:
                result.fail(sequence, f"event {sequence} does not link to event {sequence - 1}: inserted or reordered")
            elif sha256(canonical_text(*row[:12]).encode()).hexdigest() != stored_hash:
                result.fail(sequence, f"event {sequence} does not match its hash: edited")
            elif not redacted and sha256(details.encode()).hexdigest() != row[6]:
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
        prev_hash = stored_hash
        expected_sequence = sequence + 1
    if result.events_checked:
        result.last_sequence, result.last_hash = expected_sequence - 1, prev_hash

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
