"""The audit trail in the console: read-only list and detail, filters, and the verify page."""

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from audit.context import Actor
from audit.models import AuditEvent
from audit.services import Target, audit_checkpoint_write, audit_record
from tests.support import tamper

pytestmark = pytest.mark.django_db


@pytest.fixture
def event() -> AuditEvent:
    return audit_record(
        actor=Actor(type="user", id="9", label="sam"),
        action="agent.run.started",
        target=Target("agents.run", "41", "run 41"),
        details={"input": "where is my order"},
    )


def test_auditor_sees_the_list_and_the_detail(client: Client, auditor: User, event: AuditEvent) -> None:
    client.force_login(auditor)
    response = client.get(reverse("admin:audit_auditevent_changelist"))
    assert response.status_code == 200
    assert b"agent.run.started" in response.content
    assert b"Verify now" in response.content
    response = client.get(reverse("admin:audit_auditevent_change", args=[event.sequence]))
    assert response.status_code == 200
    assert event.hash.encode() in response.content
    assert b"where is my order" in response.content
    assert b'name="_save"' not in response.content


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("actor_type__exact=user", "agent.run.started", "auth.user.roles_changed"),
        ("namespace=agent", "agent.run.started", "auth.user.roles_changed"),
        ("q=run+41", "agent.run.started", "auth.user.roles_changed"),
    ],
)
def test_filters_and_search(
    client: Client, auditor: User, event: AuditEvent, query: str, shown: str, hidden: str
) -> None:
    client.force_login(auditor)
    response = client.get(reverse("admin:audit_auditevent_changelist") + "?" + query)
    assert response.status_code == 200
    assert shown.encode() in response.content
    assert hidden.encode() not in response.content


def test_nobody_adds_changes_or_deletes_events(client: Client, admin: User, event: AuditEvent) -> None:
    client.force_login(admin)
    assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    response = client.post(reverse("admin:audit_auditevent_change", args=[event.sequence]), {"action": "x.y"})
    assert response.status_code == 403
    response = client.post(reverse("admin:audit_auditevent_delete", args=[event.sequence]), {"post": "yes"})
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.action == "agent.run.started"


def test_viewer_cannot_open_the_trail(client: Client, viewer: User) -> None:
    client.force_login(viewer)
    assert client.get(reverse("admin:audit_auditevent_changelist")).status_code == 403
    assert client.get(reverse("admin:audit_auditevent_verify")).status_code == 403


def test_verify_now_page(client: Client, auditor: User, event: AuditEvent) -> None:
    client.force_login(auditor)
    response = client.get(reverse("admin:audit_auditevent_verify"))
    assert response.status_code == 200
    assert b"Intact." in response.content
    tamper("UPDATE audit_auditevent SET action = 'agent.run.cancelled' WHERE sequence = %s", [event.sequence])
    response = client.get(reverse("admin:audit_auditevent_verify"))
    assert b"Tampering detected." in response.content
    assert f"first broken sequence number is {event.sequence}".encode() in response.content
    check = AuditEvent.objects.order_by("-sequence").first()
    assert check is not None
    assert (check.action, check.actor_label) == ("audit.chain.broken", auditor.username)


def test_verify_now_compares_the_external_checkpoints(
    client: Client, auditor: User, event: AuditEvent, checkpoint_file: Path, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        audit_checkpoint_write(actor=Actor.system("tests"))
    client.force_login(auditor)
    response = client.get(reverse("admin:audit_auditevent_verify"))
    assert b"Intact." in response.content
    assert b"1 outside it verified" in response.content
    assert f"from {checkpoint_file}: 1 read".encode() in response.content
    tamper("DELETE FROM audit_auditevent")
    tamper("DELETE FROM audit_auditcheckpoint")
    response = client.get(reverse("admin:audit_auditevent_verify"))
    assert b"first broken sequence number is 1." in response.content
    assert b"were truncated" in response.content
