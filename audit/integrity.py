"""The chain's arithmetic: canonical JSON, event hashes, event seals and checkpoint signatures.

An event's hash is SHA-256 over the canonical JSON of its fields and the previous event's hash. The
details enter only as their own digest, so details can be redacted for retention while the chain still
verifies. Checkpoints sign a chain head with HMAC-SHA256 under ``settings.AUDIT_CHECKPOINT_KEY``, and each
event carries a seal: an HMAC of its content under a key derived from it, which nobody without the key can
compute, so a forged event is found even when its hash and every later one were computed correctly.
"""

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
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
        '{"action":'
        + _quote(action)
        + ',"actor_id":'
        + _quote(actor_id)
        + ',"actor_label":'
        + _quote(actor_label)
        + ',"actor_type":'
        + _quote(actor_type)
        + ',"correlation_id":"'
        + correlation_id
        + '","created_at":"'
        + created_at
        + '","details_digest":"'
        + details_digest
        + '","prev_hash":"'
        + prev_hash
        + '","sequence":'
        + str(sequence)
        + ',"target_id":'
        + _quote(target_id)
        + ',"target_label":'
        + _quote(target_label)
        + ',"target_type":'
        + _quote(target_type)
        + "}"
    )


def canonical_parts(values: dict[str, Any]) -> tuple[str, str, str, str]:
    """The canonical text cut where ``created_at``, ``prev_hash`` and ``sequence`` go, for whoever fills
    them in at append time (the PostgreSQL ``audit_append`` function)."""
    text = canonical_text(
        values["action"],
        values["actor_id"],
        values["actor_label"],
        values["actor_type"],
        str(values["correlation_id"]),
        _SLOT,
        values["details_digest"],
        _SLOT,
        _SLOT,
        values["target_id"],
        values["target_label"],
        values["target_type"],
    )
    head, middle, between, tail = text.split(_SLOT)
    return head, middle, between, tail


def hash_and_seal_texts(
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
) -> tuple[str, str]:
    """``canonical_text`` of an event and its ``seal_text``, escaping each field once: the hot path of verifying.
    The tests pin both to their definitions."""
    head = (
        '{"action":'
        + _quote(action)
        + ',"actor_id":'
        + _quote(actor_id)
        + ',"actor_label":'
        + _quote(actor_label)
        + ',"actor_type":'
        + _quote(actor_type)
        + ',"correlation_id":"'
        + correlation_id
        + '","created_at":"'
    )
    middle = '","details_digest":"' + details_digest + '","prev_hash":"'
    tail = (
        ',"target_id":'
        + _quote(target_id)
        + ',"target_label":'
        + _quote(target_label)
        + ',"target_type":'
        + _quote(target_type)
        + "}"
    )
    hashed = head + created_at + middle + prev_hash + '","sequence":' + str(sequence) + tail
    return hashed, head + middle + '","sequence":' + tail


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


def seal_key(key: str) -> bytes:
    """The key that seals events, derived from the checkpoint key: one secret to keep, its two uses kept apart."""
    return hmac.new(key.encode(), b"steward audit event seal", hashlib.sha256).digest()


def seal_text(values: dict[str, Any]) -> str:
    """What a seal covers: the canonical text of the hashed fields with ``created_at``, ``prev_hash`` and
    ``sequence`` left empty (on PostgreSQL they are filled in by the database, under the chain's lock)."""
    return "".join(canonical_parts(values))


class Sealer:
    """Seals events: a 128-bit keyed BLAKE2b of ``seal_text`` (BLAKE2's own MAC mode, cheaper than HMAC-SHA256),
    proof that whoever wrote the event held the key. The keyed state is computed once and copied per event."""

    def __init__(self, key: bytes) -> None:
        self._keyed = hashlib.blake2b(key=key, digest_size=16)

    def __call__(self, text: str) -> str:
        mac = self._keyed.copy()
        mac.update(text.encode())
        return mac.hexdigest()


@dataclass(frozen=True)
class CheckpointRecord:
    """A signed chain head, from the database or read back from an external sink; ``label`` names where."""

    label: str
    sequence: int
    hash: str
    created_at: dt.datetime
    signature: str

    def signature_is_valid(self, key: str) -> bool:
        expected = checkpoint_signature(key, sequence=self.sequence, chain_hash=self.hash, created_at=self.created_at)
        return hmac.compare_digest(expected, self.signature)

    def as_line(self) -> str:
        """The checkpoint as one line of an external sink (canonical JSON, the fields its signature covers)."""
        return canonical_json(
            {
                "sequence": self.sequence,
                "hash": self.hash,
                "created_at": timestamp(self.created_at),
                "signature": self.signature,
            }
        )


# The row layout verification reads, every value as the canonical text: the hashed fields first, in order.
ROW_FIELDS = (*HASHED_FIELDS, "details", "redacted", "hash", "seal")
