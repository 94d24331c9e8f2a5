"""Signed checkpoints: written by the management command and by the periodic task on a real worker."""

import io

import pytest
from django.core.management import call_command

from audit import integrity
from audit.context import Actor
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_record
from audit.tasks import audit_checkpoint_write_task
from tests.support import wait_for


@pytest.mark.django_db
def test_command_signs_the_chain_head(settings) -> None:
    audit_record(actor=Actor.system("tests"), action="test.thing.happened")
    head = AuditEvent.objects.order_by("-sequence").first()
    assert head is not None
    out = io.StringIO()
    call_command("audit_checkpoint", stdout=out)
    checkpoint = AuditCheckpoint.objects.get()
    assert (checkpoint.sequence, checkpoint.hash) == (head.sequence, head.hash)
    assert checkpoint.signature == integrity.checkpoint_signature(
        settings.AUDIT_CHECKPOINT_KEY, sequence=head.sequence, chain_hash=head.hash, created_at=checkpoint.created_at
    )
    assert f"at event {head.sequence}" in out.getvalue()
    written = AuditEvent.objects.get(action="audit.checkpoint.written")
    assert written.actor_label.startswith("cli:")


@pytest.mark.django_db
def test_the_key_is_not_in_the_database(settings) -> None:
    audit_record(actor=Actor.system("tests"), action="test.thing.happened")
    call_command("audit_checkpoint", stdout=io.StringIO())
    key = settings.AUDIT_CHECKPOINT_KEY
    for event in AuditEvent.objects.all():
        assert key not in str(event.details)
    assert not AuditCheckpoint.objects.filter(signature__contains=key).exists()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_periodic_task_writes_a_checkpoint_on_a_real_worker(celery_worker: str) -> None:
    audit_record(actor=Actor.system("tests"), action="test.thing.happened")
    audit_checkpoint_write_task.delay()
    checkpoint = wait_for(lambda: AuditCheckpoint.objects.first(), message="a checkpoint from the worker")
    event = AuditEvent.objects.get(action="audit.checkpoint.written")
    assert event.actor_label == "beat"
    assert checkpoint.sequence == event.sequence - 1
