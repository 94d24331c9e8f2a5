"""Tampering that the chain alone cannot reveal: redactions faked, checkpoints deleted with the events they
cover, forged heads, the whole trail truncated. Found through the seals, the redaction events and the
checkpoints written outside the database, and named by the first bad sequence number.

The attacks run raw SQL with database-superuser rights (past the PostgreSQL trigger), inside the test's
transaction. Checkpoints reach the external file after commit: ``django_capture_on_commit_callbacks`` runs
those callbacks here, as the commit would.
"""

import datetime as dt
import io
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Field
from django.utils import timezone

from audit import integrity
from audit.context import Actor
from audit.models import AuditEvent
from audit.services import audit_chain_verify, audit_checkpoint_write, audit_event_redact, audit_record
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


@pytest.fixture
def checkpoint_out(django_capture_on_commit_callbacks: Any) -> Any:
    """Sign the head, and send the checkpoint out as the commit would: returns the checkpoint."""

    def write() -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            checkpoint = audit_checkpoint_write(actor=SYSTEM)
        assert checkpoint is not None
        return checkpoint

    return write


def db_value(name: str, value: Any) -> Any:
    """``value`` as the database stores column ``name`` of an event (raw SQL gets no help from the ORM)."""
    field = AuditEvent._meta.get_field(name)
    assert isinstance(field, Field)
    return field.get_db_prep_value(value, connection)


def verify_command(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", *args, stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code or 0), err.getvalue()
    return 0, out.getvalue()


def head() -> AuditEvent:
    event = AuditEvent.objects.order_by("-sequence").first()
    assert event is not None
    return event


def test_replaced_details_marked_redacted_are_found(trail: list[AuditEvent]) -> None:
    victim = trail[4].sequence
    tamper(
        "UPDATE audit_auditevent SET details = %s, redacted_at = %s WHERE sequence = %s",
        ['{"i":4,"note":"nothing happened"}', db_value("redacted_at", timezone.now()), victim],
    )
    result = audit_chain_verify(actor=SYSTEM)
    assert result.first_broken_sequence == victim
    assert f"event {victim} is marked redacted but still holds details" in result.problems[0]


def test_details_replaced_after_a_real_redaction_are_found(trail: list[AuditEvent]) -> None:
    victim = trail[4].sequence
    audit_event_redact(actor=SYSTEM, sequence=victim, reason="retention")
    assert audit_chain_verify(actor=SYSTEM).ok
    tamper("UPDATE audit_auditevent SET details = %s WHERE sequence = %s", ['{"i":4,"note":"nothing"}', victim])
    result = audit_chain_verify(actor=SYSTEM)
    assert result.first_broken_sequence == victim
    assert "still holds details" in result.problems[0]


def test_details_blanked_and_marked_redacted_without_a_redaction_event_are_found(trail: list[AuditEvent]) -> None:
    victim = trail[6].sequence
    tamper(
        "UPDATE audit_auditevent SET details = '{}', redacted_at = %s WHERE sequence = %s",
        [db_value("redacted_at", timezone.now()), victim],
    )
    result = audit_chain_verify(actor=SYSTEM)
    assert result.first_broken_sequence == victim
    assert f"event {victim} is marked redacted but no audit.event.redacted event names it" in result.problems[0]
    code, output = verify_command()
    assert code == 1
    assert f"first broken sequence number {victim}" in output
    assert "redactions matched: FAILED" in output


def test_a_truncated_tail_with_its_checkpoints_deleted_is_found_outside(
    trail: list[AuditEvent], checkpoint_out: Any, checkpoint_file: Path
) -> None:
    checkpoint = checkpoint_out()
    cut_from = trail[7].sequence
    tamper("DELETE FROM audit_auditevent WHERE sequence >= %s", [cut_from])
    tamper("DELETE FROM audit_auditcheckpoint")
    code, output = verify_command()
    assert code == 1
    assert f"first broken sequence number {cut_from}" in output
    assert f"covers event {checkpoint.sequence}: events {cut_from}-{checkpoint.sequence} were truncated" in output
    assert str(checkpoint_file) in output


def rewrite_from(victim: int, **changes: Any) -> None:
    """Change event ``victim`` and recompute its hash and every later one, as a careful forger would."""
    rows = [dict(row) for row in AuditEvent.objects.filter(sequence__gte=victim).order_by("sequence").values()]
    prev_hash = AuditEvent.objects.get(sequence=victim - 1).hash
    for row in rows:
        if row["sequence"] == victim:
            row.update(changes)
        row["prev_hash"] = prev_hash
        row["hash"] = prev_hash = integrity.event_hash(row)
        tamper(
            "UPDATE audit_auditevent SET actor_label = %s, created_at = %s, prev_hash = %s, hash = %s "
            "WHERE sequence = %s",
            [
                row["actor_label"],
                db_value("created_at", row["created_at"]),
                row["prev_hash"],
                row["hash"],
                row["sequence"],
            ],
        )


def test_a_rewrite_with_every_later_hash_recomputed_and_its_checkpoints_deleted_is_found_at_the_edited_event(
    trail: list[AuditEvent], checkpoint_out: Any
) -> None:
    checkpoint_out()
    victim = trail[3].sequence
    rewrite_from(victim, actor_label="nobody")
    tamper("DELETE FROM audit_auditcheckpoint")
    result = audit_chain_verify(actor=SYSTEM)
    assert result.first_broken_sequence == victim
    assert f"event {victim} does not match its seal" in result.problems[0]
    assert any("differs from signed external checkpoint" in problem for problem in result.problems)


def test_a_rewrite_the_seal_does_not_cover_is_placed_between_the_checkpoints_around_it(
    trail: list[AuditEvent], checkpoint_out: Any
) -> None:
    """``created_at`` is set under the chain's lock, after the seal: a rewritten time is found against the
    checkpoints, and named by the first event after the last checkpoint the chain still agrees with."""
    before = checkpoint_out()
    later = [audit_record(actor=SYSTEM, action="test.thing.happened", details={"i": i}) for i in range(5)]
    after = checkpoint_out()
    victim = later[2].sequence
    rewrite_from(victim, created_at=later[2].created_at - dt.timedelta(days=1))
    tamper("DELETE FROM audit_auditcheckpoint")
    result = audit_chain_verify(actor=SYSTEM)
    assert result.first_broken_sequence == before.sequence + 1
    assert before.sequence + 1 <= victim <= after.sequence
    assert f"event {after.sequence} differs from signed external checkpoint at line 2 of" in result.problems[0]
    assert f"rewritten at an event from {before.sequence + 1} to {after.sequence}" in result.problems[0]


def test_a_truncation_after_the_newest_checkpoint_is_found_once_the_window_has_passed(
    trail: list[AuditEvent], checkpoint_out: Any, settings
) -> None:
    checkpoint = checkpoint_out()
    for i in range(3):
        audit_record(actor=SYSTEM, action="test.thing.happened", details={"after": i})
    tamper("DELETE FROM audit_auditevent WHERE sequence > %s", [checkpoint.sequence])
    settings.AUDIT_CHECKPOINT_INTERVAL = 0.5  # the window is twice the interval: one missed beat is tolerated
    time.sleep(1.1)
    code, output = verify_command()
    assert code == 1
    assert f"first broken sequence number {checkpoint.sequence + 1}" in output
    assert "window: FAILED" in output
    assert "events after the newest checkpoint are not covered" in output
    assert f"the newest checkpoint (event {checkpoint.sequence})" in output


def forged_head(seal: str) -> int:
    last = head()
    forged: dict[str, Any] = {
        "sequence": last.sequence + 1,
        "created_at": timezone.now(),
        "actor_type": "user",
        "actor_id": "1",
        "actor_label": "ada-admin",
        "action": "governance.version.approved",
        "target_type": "",
        "target_id": "",
        "target_label": "",
        "details_digest": integrity.details_digest({}),
        "correlation_id": last.correlation_id,
        "prev_hash": last.hash,
    }
    forged["hash"] = integrity.event_hash(forged)
    columns = [*forged, "details", "seal"]
    tamper(
        f"INSERT INTO audit_auditevent ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
        [*(db_value(name, value) for name, value in forged.items()), "{}", seal],
    )
    return last.sequence + 1


@pytest.mark.parametrize("seal", ["", "0" * 32])
def test_a_correctly_chained_event_forged_at_the_head_is_found(trail: list[AuditEvent], seal: str) -> None:
    forged = forged_head(seal)
    result = audit_chain_verify(actor=SYSTEM)
    assert result.first_broken_sequence == forged
    assert result.problems[0].startswith(f"event {forged} ")
    assert "seal" in result.problems[0]


def test_truncating_both_tables_is_found_through_the_external_sink(
    trail: list[AuditEvent], checkpoint_out: Any
) -> None:
    checkpoint = checkpoint_out()
    for table in ("audit_auditevent", "audit_auditcheckpoint"):
        tamper(f"TRUNCATE {table}" if connection.vendor == "postgresql" else f"DELETE FROM {table}")
    code, output = verify_command()
    assert code == 1
    assert "first broken sequence number 1" in output
    assert "the trail ends at event 0 but signed external checkpoint at line 1 of" in output
    assert f"events 1-{checkpoint.sequence} were truncated" in output


def test_the_api_compares_the_external_sink_too(
    trail: list[AuditEvent], checkpoint_out: Any, api_as: Any, auditor: Any
) -> None:
    checkpoint_out()
    tamper("DELETE FROM audit_auditevent")
    tamper("DELETE FROM audit_auditcheckpoint")
    body = api_as(auditor).get("/api/audit/verify/").json()
    assert body["ok"] is False
    assert body["first_broken_sequence"] == 1
    assert body["external_checkpoints_read"] == 1
    failed = [check["check"] for check in body["checks"] if not check["ok"]]
    assert failed == ["external checkpoints"]


def test_deleting_the_checkpoints_leaves_the_events_after_them_uncovered(trail: list[AuditEvent], settings) -> None:
    """With no sink to read back, the window still holds: N events or more after the newest checkpoint left
    in the database (here none) are reported from the first of them."""
    settings.AUDIT_CHECKPOINT_EVERY_EVENTS = 5
    for i in range(6):
        audit_record(actor=SYSTEM, action="test.thing.happened", details={"more": i})
    assert audit_chain_verify(actor=SYSTEM).ok
    tamper("DELETE FROM audit_auditcheckpoint")
    result = audit_chain_verify(actor=SYSTEM)
    assert result.first_broken_sequence == 1
    assert "events after the newest checkpoint are not covered" in result.problems[0]
    assert "newest checkpoint covers head" in result.failed
