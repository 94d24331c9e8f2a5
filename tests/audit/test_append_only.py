"""The database refuses UPDATE and DELETE on the trail (PostgreSQL trigger), and concurrent appends from
several processes keep one valid chain."""

import multiprocessing

import pytest
from django.db import DatabaseError, connection, connections, transaction

from audit.context import Actor
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_chain_verify, audit_checkpoint_write, audit_record

SYSTEM = Actor.system("tests")
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the append-only trigger is PostgreSQL's; other databases rely on the ORM"
)


@postgresql_only
@pytest.mark.django_db
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET action = 'test.thing.rewritten' WHERE sequence = %s",
        "UPDATE audit_auditevent SET details = '{}' WHERE sequence = %s",
        "DELETE FROM audit_auditevent WHERE sequence = %s",
    ],
)
def test_trigger_refuses_raw_sql_changes(sql: str) -> None:
    event = audit_record(actor=SYSTEM, action="test.thing.happened", details={"secret": "no"})
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [event.sequence])
    event.refresh_from_db()
    assert (event.action, event.details) == ("test.thing.happened", {"secret": "no"})


@postgresql_only
@pytest.mark.django_db
def test_trigger_refuses_raw_sql_on_checkpoints() -> None:
    audit_record(actor=SYSTEM, action="test.thing.happened")
    checkpoint = audit_checkpoint_write(actor=SYSTEM)
    assert checkpoint is not None
    for sql in (
        "UPDATE audit_auditcheckpoint SET hash = 'x' WHERE id = %s",
        "DELETE FROM audit_auditcheckpoint WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [checkpoint.pk])
    assert AuditCheckpoint.objects.filter(pk=checkpoint.pk, hash=checkpoint.hash).exists()


@postgresql_only
@pytest.mark.django_db
def test_trigger_lets_through_only_a_redaction() -> None:
    event = audit_record(actor=SYSTEM, action="test.thing.happened", details={"email": "sam@example.com"})
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET details = '{}', redacted_at = now(), actor_label = 'x' WHERE sequence = %s",
            [event.sequence],
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET details = '{}', redacted_at = now() WHERE sequence = %s",
            [event.sequence],
        )
    event.refresh_from_db()
    assert event.details == {}
    # Let through by the database, but no audit.event.redacted event names it: verification says so.
    result = audit_chain_verify(actor=SYSTEM)
    assert result.first_broken_sequence == event.sequence
    assert "no audit.event.redacted event names it" in result.problems[0]


def _append(count: int, writer: int, start: "multiprocessing.synchronize.Event") -> None:
    connections.close_all()
    start.wait()
    for i in range(count):
        with transaction.atomic():
            audit_record(actor=Actor.system(f"writer-{writer}"), action="test.concurrent.append", details={"i": i})
    connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_eight_processes_appending_at_once_keep_one_valid_chain() -> None:
    per_writer, writers = 40, 8
    before = AuditEvent.objects.count()
    connections.close_all()
    context = multiprocessing.get_context("fork")
    start = context.Event()
    processes = [context.Process(target=_append, args=(per_writer, n, start)) for n in range(writers)]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * writers
    sequences = list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, before + per_writer * writers + 1))
    assert AuditEvent.objects.filter(action="test.concurrent.append").count() == per_writer * writers
    assert len({label for label in AuditEvent.objects.values_list("actor_label", flat=True) if "writer" in label}) == 8
    result = audit_chain_verify(actor=SYSTEM)
    assert result.ok, result.problems
