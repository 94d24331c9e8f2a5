"""Audit exports for Auditors: CSV and JSON Lines from the console (with the list's filters) and from the API,
streamed, a snapshot of the trail, and themselves recorded in the trail."""

import csv
import io
import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from audit import export, integrity
from audit.context import Actor
from audit.models import AuditEvent
from audit.services import Target, audit_event_redact, audit_record

pytestmark = pytest.mark.django_db

EXPORT_URL = "/admin/audit/auditevent/export/"
API_EXPORT_URL = "/api/audit/events/export/"


@pytest.fixture
def events() -> list[AuditEvent]:
    recorded = [
        audit_record(
            actor=Actor(type="user", id=str(i % 2), label=f"user-{i % 2}"),
            action="persona.version.released" if i % 3 == 0 else "agent.run.started",
            target=Target("agents.run", str(i), f"run {i}"),
            details={"i": i, "text": 'naïve, "quoted"\nand multi-line', "nested": {"b": 2, "a": [1, 2]}},
        )
        for i in range(7)
    ]
    audit_event_redact(actor=Actor.system("tests"), sequence=recorded[2].sequence, reason="retention")
    return recorded


def body(response: Any) -> str:
    assert isinstance(response, StreamingHttpResponse)
    return response.getvalue().decode()


def csv_rows(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == export.COLUMNS
    return list(reader)


def jsonl_rows(text: str) -> list[dict[str, Any]]:
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def expected_sequences(**filters: Any) -> list[int]:
    return list(AuditEvent.objects.filter(**filters).order_by("sequence").values_list("sequence", flat=True))


def last_event() -> AuditEvent:
    event = AuditEvent.objects.order_by("-sequence").first()
    assert event is not None
    return event


def test_console_csv_holds_every_event_exactly_as_stored(client: Client, auditor: User, events) -> None:
    client.force_login(auditor)
    before = expected_sequences()
    response = client.get(EXPORT_URL, {"format": "csv"})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="audit-events-to-{before[-1]}.csv"'
    rows = csv_rows(body(response))
    assert [int(row["sequence"]) for row in rows] == before  # every event up to the export, oldest first
    stored = {event.sequence: event for event in AuditEvent.objects.filter(sequence__in=before)}
    for row in rows:
        event = stored[int(row["sequence"])]
        assert row["created_at"] == integrity.timestamp(event.created_at)
        assert (row["actor_type"], row["actor_id"], row["actor_label"]) == (
            event.actor_type,
            event.actor_id,
            event.actor_label,
        )
        assert (row["target_type"], row["target_id"], row["target_label"]) == (
            event.target_type,
            event.target_id,
            event.target_label,
        )
        assert row["action"] == event.action
        assert row["details"] == integrity.canonical_json(event.details)
        assert row["details_digest"] == event.details_digest
        if event.redacted_at is None:
            assert integrity.details_digest(json.loads(row["details"])) == row["details_digest"]
        assert row["correlation_id"] == str(event.correlation_id)
        assert (row["prev_hash"], row["hash"]) == (event.prev_hash, event.hash)
    # The chain can be followed in the file itself.
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in itertools.pairwise(rows))
    redacted = next(row for row in rows if int(row["sequence"]) == events[2].sequence)
    assert redacted["details"] == "{}"
    assert redacted["redacted_at"].endswith("+00:00")
    plain = next(row for row in rows if int(row["sequence"]) == events[1].sequence)
    assert json.loads(plain["details"])["text"] == 'naïve, "quoted"\nand multi-line'
    assert plain["redacted_at"] == ""


def test_console_jsonl_one_object_per_event(client: Client, auditor: User, events) -> None:
    client.force_login(auditor)
    response = client.get(EXPORT_URL, {"format": "jsonl"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    rows = jsonl_rows(body(response))
    assert [row["sequence"] for row in rows] == expected_sequences(sequence__lte=rows[-1]["sequence"])
    assert all(tuple(row) == export.COLUMNS for row in rows)
    row = next(row for row in rows if row["sequence"] == events[4].sequence)
    assert row["details"] == events[4].details
    assert row["details"]["nested"] == {"a": [1, 2], "b": 2}
    assert row["created_at"] == integrity.timestamp(events[4].created_at)
    assert row["redacted_at"] is None
    assert (row["action"], row["target_id"], row["hash"]) == ("agent.run.started", "4", events[4].hash)


@pytest.mark.parametrize(
    ("query", "filters"),
    [
        ({"namespace": "agent"}, {"action__startswith": "agent."}),
        (
            {"actor_type__exact": "user", "namespace": "persona"},
            {"actor_type": "user", "action__startswith": "persona."},
        ),
        ({"q": "run 4"}, {"target_label": "run 4"}),
    ],
)
def test_console_export_applies_the_list_filters(
    client: Client, auditor: User, events, query: dict[str, str], filters: dict[str, Any]
) -> None:
    client.force_login(auditor)
    expected = expected_sequences(**filters)
    rows = jsonl_rows(body(client.get(EXPORT_URL, {**query, "format": "jsonl"})))
    assert [row["sequence"] for row in rows] == expected
    assert expected


def test_the_list_links_to_exports_of_what_it_shows(client: Client, auditor: User, events) -> None:
    client.force_login(auditor)
    response = client.get(reverse("admin:audit_auditevent_changelist"), {"namespace": "agent", "q": "run"})
    assert response.status_code == 200
    links = dict(response.context["export_links"])
    assert set(links) == {"Export CSV", "Export JSON Lines"}
    assert links["Export JSON Lines"].startswith(EXPORT_URL + "?")
    rows = jsonl_rows(body(client.get(links["Export JSON Lines"])))
    assert [row["sequence"] for row in rows] == expected_sequences(
        action__startswith="agent.", target_label__contains="run"
    )
    assert b"Export CSV" in response.content


def test_an_unknown_format_or_filter_is_refused(client: Client, auditor: User, events) -> None:
    client.force_login(auditor)
    assert client.get(EXPORT_URL, {"format": "xlsx"}).status_code == 400
    response = client.get(EXPORT_URL, {"format": "csv", "nonsense__field": "1"})
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_the_export_is_a_snapshot_and_is_recorded(client: Client, auditor: User, events) -> None:
    client.force_login(auditor)
    head = last_event().sequence
    response = client.get(EXPORT_URL, {"format": "csv", "namespace": "agent"})
    recorded = last_event()
    assert recorded.sequence == head + 1
    assert recorded.action == "audit.trail.exported"
    assert (recorded.actor_type, recorded.actor_id, recorded.actor_label) == ("user", str(auditor.pk), auditor.username)
    assert recorded.target_type == "audit.chain"
    # Written while the file is being sent: neither it nor the export's own event is in the file.
    audit_record(actor=Actor.system("tests"), action="agent.run.started", target=Target("agents.run", "99", "run 99"))
    rows = csv_rows(body(response))
    assert [int(row["sequence"]) for row in rows] == expected_sequences(action__startswith="agent.", sequence__lte=head)
    assert recorded.details == {
        "format": "csv",
        "filters": {"namespace": "agent"},
        "rows": len(rows),
        "up_to_sequence": head,
        "via": "console",
    }
    assert response["X-Export-Rows"] == str(len(rows))


def test_the_file_is_streamed_in_chunks(client: Client, auditor: User, events, monkeypatch) -> None:
    monkeypatch.setattr(export, "CHUNK_ROWS", 3)
    client.force_login(auditor)
    for fmt in ("csv", "jsonl"):
        response = client.get(EXPORT_URL, {"format": fmt})
        assert isinstance(response, StreamingHttpResponse)
        chunks = list(response)
        rows = int(response["X-Export-Rows"])
        assert rows > 6
        assert len(chunks) >= rows // 3
        assert all(len(chunk) > 0 for chunk in chunks[:-1])


def test_api_export_with_filters(api_as: Callable[[User], APIClient], auditor: User, events) -> None:
    client = api_as(auditor)
    response = client.get(API_EXPORT_URL, {"format": "jsonl", "action_prefix": "agent.", "actor_id": "1"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    rows = jsonl_rows(body(response))
    assert [row["sequence"] for row in rows] == expected_sequences(action__startswith="agent.", actor_id="1")
    recorded = last_event()
    assert recorded.action == "audit.trail.exported"
    assert recorded.actor_type == "api_client"
    assert recorded.details["filters"] == {"action_prefix": "agent.", "actor_id": "1"}
    assert recorded.details["via"] == "api"
    assert recorded.details["rows"] == len(rows)

    response = client.get(API_EXPORT_URL, {"target_type": "agents.run", "target_id": "3"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"  # CSV unless asked otherwise
    assert [int(row["sequence"]) for row in csv_rows(body(response))] == [events[3].sequence]


def test_api_export_refuses_bad_input(api_as: Callable[[User], APIClient], auditor: User) -> None:
    client = api_as(auditor)
    response = client.get(API_EXPORT_URL, {"format": "xml"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"format": ["Use csv or jsonl."]}
    response = client.get(API_EXPORT_URL, {"format": "csv", "since": "yesterday"})
    assert response.status_code == 400
    assert "since" in response.json()["error"]["fields"]


@pytest.mark.parametrize("role", ["viewer", "operator", "editor", "approver"])
def test_only_auditors_export(
    request: pytest.FixtureRequest, client: Client, api_as: Callable[[User], APIClient], role: str, events
) -> None:
    user: User = request.getfixturevalue(role)
    client.force_login(user)
    assert client.get(EXPORT_URL, {"format": "csv"}).status_code == 403
    response = api_as(user).get(API_EXPORT_URL, {"format": "jsonl"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not AuditEvent.objects.filter(action="audit.trail.exported").exists()  # nothing exported


def test_reading_the_trail_without_the_export_permission_shows_no_export(
    client: Client, make_user: Callable[..., User], events
) -> None:
    reader = make_user("rita-reader")
    reader.is_staff = True
    reader.save()
    reader.user_permissions.add(Permission.objects.get(codename="view_auditevent", content_type__app_label="audit"))
    client.force_login(reader)
    response = client.get(reverse("admin:audit_auditevent_changelist"))
    assert response.status_code == 200
    assert b"Export CSV" not in response.content
    assert "export_links" not in response.context
    assert client.get(EXPORT_URL, {"format": "csv"}).status_code == 403


def test_the_auditor_role_holds_the_export_permission(auditor: User, viewer: User, operator: User) -> None:
    assert auditor.has_perm("audit.export_auditevent")
    assert not viewer.has_perm("audit.export_auditevent")
    assert not operator.has_perm("audit.export_auditevent")
