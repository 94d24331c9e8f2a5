"""Every kind of tampering is found, and named by the first broken sequence number.

The attacks run raw SQL with database-superuser rights (past the PostgreSQL trigger), inside the
test's transaction.
"""

import io
from typing import Any

import pytest
from django.core.management import call_command

from audit import integrity
from audit.context import Actor
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_chain_verify, audit_checkpoint_write, audit_record
from tests.support import tamper

SYSTEM = Actor.system("tests")
pytestmark = pytest.mark.django_db


@pytest.fixture
def trail() -> list[AuditEvent]:
    """A fresh trail of ten events (the test database starts with a few of its own)."""
    return [
        audit_record(actor=SYSTEM, action="test.thing.happened", details={"i": i, "note": f"event {i}"})
        for i in range(10)
    ]


def verify_command() -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code or 0), err.getvalue()
    return 0, out.getvalue()


def test_an_intact_trail_verifies(trail: list[AuditEvent]) -> None:
    code, output = verify_command()
    assert code == 0
    assert "OK:" in output


def test_edited_details_are_found(trail: list[AuditEvent]) -> None:
    victim = trail[4]
    tamper(
        "UPDATE audit_auditevent SET details = %s WHERE sequence = %s", ['{"i": 4, "note": "nothing"}', victim.sequence]
    )
    result = audit_chain_verify(actor=SYSTEM)
    assert result.first_broken_sequence == victim.sequence
    assert "details do not match" in result.problems[0]
    code, output = verify_command()
    assert code == 1
    assert f"first broken sequence number {victim.sequence}" in output


def test_an_edited_field_is_found(trail: list[AuditEvent]) -> None:
    victim = trail[2]
    tamper("UPDATE audit_auditevent SET actor_label = 'someone else' WHERE sequence = %s", [victim.sequence])
    result = audit_chain_verify(actor=SYSTEM)
    assert result.first_broken_sequence == victim.sequence
    assert "edited" in result.problems[0]


def test_a_deleted_event_is_found(trail: list[AuditEvent]) -> None:
    victim = trail[6]
    tamper("DELETE FROM audit_auditevent WHERE sequence = %s", [victim.sequence])
    result = audit_chain_verify(actor=SYSTEM)
    assert result.first_broken_sequence == victim.sequence
    assert "missing" in result.problems[0]
    code, output = verify_command()
    assert code == 1
    assert f"first broken sequence number {victim.sequence}" in output


def test_an_inserted_event_is_found(trail: list[AuditEvent]) -> None:
    """The forger renumbers the tail and inserts a well-formed event linked to its predecessor."""
    at = trail[5].sequence
    tamper("UPDATE audit_auditevent SET sequence = sequence + 1000000 WHERE sequence >= %s", [at])
    tamper("UPDATE audit_auditevent SET sequence = sequence - 1000000 + 1 WHERE sequence >= %s", [at + 1000000])
    forged = {
        "sequence": at,
        "created_at": trail[5].created_at,
        "actor_type": "user",
        "actor_id": "1",
        "actor_label": "forger",
        "action": "test.thing.happened",
        "target_type": "",
        "target_id": "",
        "target_label": "",
        "details_digest": integrity.details_digest({}),
        "correlation_id": trail[5].correlation_id,
        "prev_hash": trail[4].hash,
    }
    forged["hash"] = integrity.event_hash(forged)
    AuditEvent.objects.bulk_create([AuditEvent(details={}, **forged)])  # inserting needs no trickery
    result = audit_chain_verify(actor=SYSTEM)
    # The forged event links and hashes correctly, but carries no seal: only the key's holder can make one.
    assert result.first_broken_sequence == at
    assert "carries no seal" in result.problems[0]


def test_reordered_events_are_found(trail: list[AuditEvent]) -> None:
    first, second = trail[3].sequence, trail[4].sequence
    tamper("UPDATE audit_auditevent SET sequence = -1 WHERE sequence = %s", [first])
    tamper("UPDATE audit_auditevent SET sequence = %s WHERE sequence = %s", [first, second])
    tamper("UPDATE audit_auditevent SET sequence = %s WHERE sequence = -1", [second])
    result = audit_chain_verify(actor=SYSTEM)
    assert result.first_broken_sequence == first
    assert "inserted or reordered" in result.problems[0]


def test_a_truncated_tail_is_found_against_a_checkpoint(trail: list[AuditEvent]) -> None:
    checkpoint = audit_checkpoint_write(actor=SYSTEM)
    assert checkpoint is not None
    cut_from = trail[7].sequence
    tamper("DELETE FROM audit_auditevent WHERE sequence >= %s", [cut_from])
    code, output = verify_command()
    assert code == 1
    assert f"first broken sequence number {cut_from}" in output
    assert "truncated" in output


def test_a_truncated_tail_without_a_later_checkpoint_goes_unseen_so_checkpoints_matter(
    trail: list[AuditEvent],
) -> None:
    """Without a checkpoint past the cut, a clean truncation inside the window (fewer than
    AUDIT_CHECKPOINT_EVERY_EVENTS events, younger than the interval) looks like a shorter trail: checkpoints
    are what reveal it (the test above), and the window bounds what they leave uncovered."""
    tamper("DELETE FROM audit_auditevent WHERE sequence >= %s", [trail[7].sequence])
    assert not AuditCheckpoint.objects.filter(sequence__gte=trail[7].sequence).exists()
    assert audit_chain_verify(actor=SYSTEM).ok


def test_a_rewritten_chain_is_reported_at_the_edited_event(trail: list[AuditEvent]) -> None:
    """A forger who edits an event and recomputes every later hash contradicts the signed checkpoint, and the
    edited event's seal names it."""
    checkpoint = audit_checkpoint_write(actor=SYSTEM)
    assert checkpoint is not None
    victim = trail[3].sequence
    events: list[dict[str, Any]] = [
        dict(row) for row in AuditEvent.objects.filter(sequence__gte=victim).order_by("sequence").values()
    ]
    prev_hash = trail[2].hash
    for row in events:
        if row["sequence"] == victim:
            row["actor_label"] = "nobody"
        row["prev_hash"] = prev_hash
        row["hash"] = integrity.event_hash(row)
        tamper(
            "UPDATE audit_auditevent SET actor_label = %s, prev_hash = %s, hash = %s WHERE sequence = %s",
            [row["actor_label"], row["prev_hash"], row["hash"], row["sequence"]],
        )
        prev_hash = row["hash"]
    result = audit_chain_verify(actor=SYSTEM)
    assert result.first_broken_sequence == victim
    assert f"event {victim} does not match its seal" in result.problems[0]
    assert f"event {checkpoint.sequence} differs from signed checkpoint {checkpoint.pk}" in result.problems[1]


def test_a_forged_checkpoint_is_found(trail: list[AuditEvent]) -> None:
    checkpoint = audit_checkpoint_write(actor=SYSTEM)
    assert checkpoint is not None
    tamper("UPDATE audit_auditcheckpoint SET signature = %s WHERE id = %s", ["0" * 64, checkpoint.pk])
    result = audit_chain_verify(actor=SYSTEM)
    assert not result.ok
    assert "invalid signature" in result.problems[0]


def test_a_checkpoint_signed_with_another_key_is_refused(trail: list[AuditEvent], settings) -> None:
    checkpoint = audit_checkpoint_write(actor=SYSTEM)
    assert checkpoint is not None
    assert audit_chain_verify(actor=SYSTEM).ok
    settings.AUDIT_CHECKPOINT_KEY = "another key"
    assert not audit_chain_verify(actor=SYSTEM).ok
