"""Signed checkpoints: written by the management command, the periodic task on a real worker and the append
path every N events or T seconds; stored in the database and, after commit, sent to the external sinks."""

import io
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction

from audit import integrity, sinks
from audit.context import Actor
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_chain_verify, audit_checkpoint_write, audit_record
from audit.tasks import audit_checkpoint_write_task
from tests.support import child_environment, wait_for

SYSTEM = Actor.system("tests")


@pytest.mark.django_db
def test_command_signs_the_chain_head(settings) -> None:
    audit_record(actor=Actor.system("tests"), action="test.thing.happened")
    head = AuditEvent.objects.order_by("-sequence").first()
    assert head is not None
    out = io.StringIO()
    call_command("audit_checkpoint", stdout=out)
    checkpoint = AuditCheckpoint.objects.order_by("-pk").first()
    assert checkpoint is not None
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
def test_periodic_task_writes_a_checkpoint_on_a_real_worker(celery_worker: str, settings) -> None:
    # The worker writes to the sink its environment configures, by default the file under the var directory.
    default = f"file:{settings.VAR_DIR / 'audit-checkpoints.jsonl'}"
    spec = child_environment().get("AUDIT_CHECKPOINT_SINK", default)
    worker_sink = sinks.parse_sink(spec.split(",")[0])
    assert isinstance(worker_sink, sinks.FileSink)
    sink = worker_sink.path
    size = sink.stat().st_size if sink.exists() else 0
    try:
        audit_record(actor=Actor.system("tests"), action="test.thing.happened")
        audit_checkpoint_write_task.delay()
        checkpoint = wait_for(lambda: AuditCheckpoint.objects.first(), message="a checkpoint from the worker")
        event = AuditEvent.objects.get(action="audit.checkpoint.written")
        assert event.actor_label == "beat"
        assert checkpoint.sequence == event.sequence - 1
        line = json.loads(wait_for(lambda: sink.read_text()[size:].strip(), message="the worker's external line"))
        assert (line["sequence"], line["hash"], line["signature"]) == (
            checkpoint.sequence,
            checkpoint.hash,
            checkpoint.signature,
        )
    finally:
        if sink.exists():  # the trail is flushed after this test: its checkpoint must not outlive it
            os.truncate(sink, size)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.django_db
def test_an_append_signs_a_checkpoint_every_n_events_and_sends_it_out_after_commit(
    settings, checkpoint_file: Path, django_capture_on_commit_callbacks: Any
) -> None:
    settings.AUDIT_CHECKPOINT_EVERY_EVENTS = 5
    with django_capture_on_commit_callbacks(execute=True):
        audit_checkpoint_write(actor=SYSTEM)
    start = AuditCheckpoint.objects.get().sequence
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        events = [audit_record(actor=SYSTEM, action="test.thing.happened", details={"i": i}) for i in range(12)]
    signed = list(AuditCheckpoint.objects.order_by("sequence").values_list("sequence", "hash"))
    assert signed == [(start, signed[0][1]), *((e.sequence, e.hash) for e in events if (e.sequence - start) % 5 == 0)]
    assert len(callbacks) == len(signed) - 1  # the first was sent by the block before
    assert [(line["sequence"], line["hash"]) for line in lines(checkpoint_file)] == signed
    result = audit_chain_verify(actor=SYSTEM)
    assert result.ok, result.problems
    assert (result.checkpoints_checked, result.external_checkpoints_read) == (len(signed), len(signed))


@pytest.mark.django_db
def test_an_append_signs_a_checkpoint_when_the_newest_is_older_than_the_interval(settings) -> None:
    audit_checkpoint_write(actor=SYSTEM)
    settings.AUDIT_CHECKPOINT_INTERVAL = 0.2
    quick = audit_record(actor=SYSTEM, action="test.thing.happened")
    assert not AuditCheckpoint.objects.filter(sequence=quick.sequence).exists()
    time.sleep(0.3)
    late = audit_record(actor=SYSTEM, action="test.thing.happened")
    assert AuditCheckpoint.objects.filter(sequence=late.sequence, hash=late.hash).exists()


@pytest.mark.django_db
def test_a_rolled_back_checkpoint_never_leaves_the_database(
    settings, checkpoint_file: Path, django_capture_on_commit_callbacks: Any
) -> None:
    settings.AUDIT_CHECKPOINT_EVERY_EVENTS = 1
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        audit_record(actor=SYSTEM, action="test.thing.happened")
        raise RuntimeError("the caller's change failed")
    assert callbacks == []
    assert not checkpoint_file.exists()


@pytest.mark.django_db
def test_checkpoints_go_to_syslog_and_verify_reads_them_back(
    settings, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        settings.AUDIT_CHECKPOINT_SINK = f"syslog://127.0.0.1:{server.getsockname()[1]}"
        audit_record(actor=SYSTEM, action="test.thing.happened")
        with django_capture_on_commit_callbacks(execute=True):
            checkpoint = audit_checkpoint_write(actor=SYSTEM)
        message = server.recv(65536).decode()
    assert checkpoint is not None
    assert message.startswith("<86>steward-audit-checkpoint: {")
    collected = tmp_path / "syslog-export.log"
    collected.write_text(f"Dec  7 01:02:03 web-1 {message[4:]}\n")
    out = io.StringIO()
    call_command("audit_verify", "--checkpoints", str(collected), stdout=out)
    assert f"external checkpoints: ok (from {collected}: 1 read)" in out.getvalue()


@pytest.mark.django_db
def test_verify_lists_what_it_checked(checkpoint_file: Path, django_capture_on_commit_callbacks: Any) -> None:
    audit_record(actor=SYSTEM, action="test.thing.happened")
    with django_capture_on_commit_callbacks(execute=True):
        audit_checkpoint_write(actor=SYSTEM)
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    output = out.getvalue()
    for check in (
        "chain links: ok",
        "digests: ok",
        "seals: ok",
        "redactions matched: ok",
        "database checkpoints: ok (1 signed checkpoints)",
        f"external checkpoints: ok (from {checkpoint_file}: 1 read)",
        "newest checkpoint covers head: ok",
        "window: ok",
    ):
        assert check in output


@pytest.mark.django_db
def test_a_damaged_line_of_the_external_file_is_reported(
    checkpoint_file: Path, django_capture_on_commit_callbacks: Any
) -> None:
    audit_record(actor=SYSTEM, action="test.thing.happened")
    with django_capture_on_commit_callbacks(execute=True):
        audit_checkpoint_write(actor=SYSTEM)
    with checkpoint_file.open("a") as handle:
        handle.write('{"sequence": 1, "hash": "cut off\n')
    result = audit_chain_verify(actor=SYSTEM)
    assert result.problems == [f"line 2 of {checkpoint_file} is not a signed checkpoint: altered or damaged"]
