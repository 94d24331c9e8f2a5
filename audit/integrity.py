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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


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


def event_hash(values: dict[str, Any]) -> str:
    payload = {name: values[name] for name in HASHED_FIELDS}
    payload["created_at"] = timestamp(payload["created_at"])
    payload["correlation_id"] = str(payload["correlation_id"])
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


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


def verify(events: Iterable[dict[str, Any]], checkpoints: Iterable[CheckpointRecord], *, key: str) -> Verification:
    """Check ``events`` (ordered by sequence, with ``details`` and ``redacted_at``) and ``checkpoints``.

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
    for event in events:
        sequence = event["sequence"]
        if result.first_broken_sequence is None:
            if sequence != expected_sequence:
                missing = (
                    f"event {expected_sequence}"
                    if sequence == expected_sequence + 1
                    else f"events {expected_sequence}-{sequence - 1}"
                )
                result.fail(expected_sequence, f"{missing} missing: deleted from the trail")
            elif event["prev_hash"] != prev_hash:
                result.fail(sequence, f"event {sequence} does not link to event {sequence - 1}: inserted or reordered")
            elif event_hash(event) != event["hash"]:
                result.fail(sequence, f"event {sequence} does not match its hash: edited")
            elif event["redacted_at"] is None and details_digest(event["details"]) != event["details_digest"]:
                result.fail(sequence, f"event {sequence} details do not match their digest: edited")
        for checkpoint in by_sequence.pop(sequence, []):
            if checkpoint.hash != event["hash"]:
                result.fail(
                    sequence,
                    f"event {sequence} differs from signed checkpoint {checkpoint.id}: the chain was rewritten",
                )
        result.events_checked += 1
        result.last_sequence = sequence
        result.last_hash = event["hash"]
        prev_hash = event["hash"]
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
