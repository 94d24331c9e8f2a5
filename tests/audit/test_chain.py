"""Appending, verifying and redacting: the trail's everyday behaviour."""

import uuid
from typing import Any

import pytest
from django.db import transaction

from audit import integrity
from audit.context import Actor, audit_context
from audit.models import AuditEvent, AuditTrailImmutable
from audit.services import Target, audit_chain_verify, audit_event_redact, audit_record

SYSTEM = Actor.system("tests")


def record(n: int) -> list[AuditEvent]:
    return [
        audit_record(actor=SYSTEM, action="test.thing.happened", target=Target("test.thing", str(i)), details={"i": i})
        for i in range(n)
    ]


def last_sequence() -> int:
    return AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


@pytest.mark.django_db
def test_events_are_chained_in_sequence() -> None:
    start = last_sequence()
    first, second = record(2)
    assert (first.sequence, second.sequence) == (start + 1, start + 2)
    assert second.prev_hash == first.hash
    assert first.hash == integrity.event_hash({f: getattr(first, f) for f in integrity.HASHED_FIELDS})
    assert first.details_digest == integrity.details_digest({"i": 0})
    assert audit_chain_verify(actor=SYSTEM).ok


@pytest.mark.django_db
def test_event_records_actor_target_and_correlation() -> None:
    correlation_id = uuid.uuid4()
    with audit_context(correlation_id=correlation_id):
        event = audit_record(
            actor=Actor(type="user", id="7", label="sam"),
            action="persona.version.released",
            target=Target("personas.persona", "3", "Support persona"),
            details={"label": "production"},
        )
    event.refresh_from_db()
    assert (event.actor_type, event.actor_id, event.actor_label) == ("user", "7", "sam")
    assert (event.target_type, event.target_id, event.target_label) == ("personas.persona", "3", "Support persona")
    assert event.correlation_id == correlation_id
    assert event.details == {"label": "production"}


@pytest.mark.django_db
def test_action_must_be_namespaced() -> None:
    with pytest.raises(ValueError, match="namespaced"):
        audit_record(actor=SYSTEM, action="released")


@pytest.mark.django_db
def test_a_rolled_back_caller_leaves_no_event_and_no_gap() -> None:
    start = last_sequence()
    with pytest.raises(RuntimeError), transaction.atomic():
        record(1)
        raise RuntimeError("the caller's change failed")
    assert last_sequence() == start
    (event,) = record(1)
    assert event.sequence == start + 1
    assert audit_chain_verify(actor=SYSTEM).ok


@pytest.mark.django_db
def test_details_are_stored_as_json_and_hash_stably() -> None:
    import datetime as dt
    import decimal

    event = audit_record(
        actor=SYSTEM,
        action="test.thing.happened",
        details={"when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "cost": decimal.Decimal("0.10"), "n": 1.5},
    )
    event.refresh_from_db()
    assert event.details == {"when": "2026-01-02T03:04:05Z", "cost": "0.10", "n": 1.5}
    assert audit_chain_verify(actor=SYSTEM).ok


@pytest.mark.django_db
def test_orm_refuses_changes_and_deletions() -> None:
    (event,) = record(1)
    event.action = "test.thing.rewritten"
    with pytest.raises(AuditTrailImmutable):
        event.save()
    with pytest.raises(AuditTrailImmutable):
        event.delete()
    with pytest.raises(AuditTrailImmutable):
        AuditEvent.objects.filter(sequence=event.sequence).update(action="test.thing.rewritten")
    with pytest.raises(AuditTrailImmutable):
        AuditEvent.objects.filter(sequence=event.sequence).delete()
    event.refresh_from_db()
    assert event.action == "test.thing.happened"


@pytest.mark.django_db
def test_redaction_blanks_details_keeps_the_chain_valid_and_is_recorded() -> None:
    events = record(3)
    target = events[1]
    redacted = audit_event_redact(actor=SYSTEM, sequence=target.sequence, reason="retention: 90 days")
    assert redacted.details == {}
    assert redacted.redacted_at is not None
    assert redacted.details_digest == target.details_digest
    assert redacted.hash == target.hash
    result = audit_chain_verify(actor=SYSTEM)
    assert result.ok, result.problems
    note = AuditEvent.objects.get(action="audit.event.redacted")
    assert note.target_id == str(target.sequence)
    assert note.details == {"reason": "retention: 90 days"}


@pytest.mark.django_db
def test_redaction_needs_a_reason() -> None:
    (event,) = record(1)
    with pytest.raises(ValueError, match="reason"):
        audit_event_redact(actor=SYSTEM, sequence=event.sequence, reason="  ")
    event.refresh_from_db()
    assert event.redacted_at is None


@pytest.mark.django_db
def test_verification_is_itself_recorded() -> None:
    record(2)
    result = audit_chain_verify(actor=Actor(type="user", id="1", label="aude"))
    event = AuditEvent.objects.order_by("-sequence").first()
    assert event is not None
    assert event.action == "audit.chain.verified"
    assert event.actor_label == "aude"
    assert event.details["events_checked"] == result.events_checked


@pytest.mark.parametrize(
    "label",
    ["plain", 'quo"te and back\\slash', "naïve café 東京 🚀", "control\x01\x1f\n\t chars", "\u2028 line sep", ""],
)
def test_the_hand_written_canonical_form_equals_canonical_json(label: str) -> None:
    import datetime as dt

    values = {
        "sequence": 12345,
        "created_at": dt.datetime(2026, 11, 24, 3, 28, 29, 266456, tzinfo=dt.UTC),
        "actor_type": "user",
        "actor_id": "7",
        "actor_label": label,
        "action": "test.thing.happened",
        "target_type": "x.y",
        "target_id": label,
        "target_label": label,
        "details_digest": "ab" * 32,
        "correlation_id": uuid.UUID(int=42),
        "prev_hash": "cd" * 32,
    }
    payload = {**values, "created_at": "2026-11-24T03:28:29.266456+00:00", "correlation_id": str(uuid.UUID(int=42))}
    import hashlib

    assert integrity.event_hash(values) == hashlib.sha256(integrity.canonical_json(payload).encode()).hexdigest()
    texts: dict[str, Any] = payload
    row = [texts[name] for name in integrity.HASHED_FIELDS]
    assert integrity.hash_and_seal_texts(*row) == (integrity.canonical_text(*row), integrity.seal_text(values))
    # A seal covers every hashed field but the three filled in under the chain's lock.
    blanks: dict[str, Any] = {**texts, "created_at": "", "prev_hash": "", "sequence": ""}
    assert integrity.seal_text(values) == integrity.canonical_text(*(blanks[name] for name in integrity.HASHED_FIELDS))


@pytest.mark.django_db
def test_unusual_labels_round_trip_and_verify() -> None:
    audit_record(
        actor=Actor(type="user", id="1", label='naïve "café" 東京 🚀\\'),
        action="test.thing.happened",
        target=Target("x.y", "1", "line\nbreak\x01"),
        details={"emoji": "🚀", "nested": {"b": [1, 2.5, None, True], "a": "é"}},
    )
    result = audit_chain_verify(actor=SYSTEM)
    assert result.ok, result.problems
