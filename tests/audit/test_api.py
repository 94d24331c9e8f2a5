"""The audit API: Auditors list (filtered, cursor-paginated) and verify; nobody else does."""

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from audit.context import Actor
from audit.models import AuditEvent
from audit.services import Target, audit_record
from tests.support import tamper

pytestmark = pytest.mark.django_db


@pytest.fixture
def events() -> list[AuditEvent]:
    return [
        audit_record(
            actor=Actor(type="user", id=str(i % 2), label=f"user-{i % 2}"),
            action="persona.version.released" if i % 3 == 0 else "agent.run.started",
            target=Target("agents.run", str(i), f"run {i}"),
            details={"i": i},
        )
        for i in range(12)
    ]


def test_auditor_lists_events_newest_first(api_as: Callable[[User], APIClient], auditor: User, events) -> None:
    response = api_as(auditor).get("/api/audit/events/")
    assert response.status_code == 200
    sequences = [row["sequence"] for row in response.data["results"]]
    assert sequences == sorted(sequences, reverse=True)
    assert sequences[0] >= events[-1].sequence
    first = next(row for row in response.data["results"] if row["sequence"] == events[-1].sequence)
    assert first["hash"] == events[-1].hash
    assert first["details"] == {"i": 11}


def test_cursor_pagination_walks_the_whole_trail(api_as, auditor: User, events) -> None:
    client = api_as(auditor)
    url: str | None = "/api/audit/events/?page_size=5&action_prefix=agent."
    seen: list[int] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        assert "count" not in response.data
        seen += [row["sequence"] for row in response.data["results"]]
        url = response.data["next"]
    # Every agent.* event, the fixture's and any recorded while the test database was set up (the tool sync).
    expected = list(
        AuditEvent.objects.filter(action__startswith="agent.").order_by("-sequence").values_list("sequence", flat=True)
    )
    assert seen == expected
    assert {e.sequence for e in events if e.action.startswith("agent.")} <= set(seen)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("action=persona.version.released", lambda e: e.action == "persona.version.released"),
        ("actor_id=1&actor_type=user", lambda e: e.actor_id == "1"),
        ("target_type=agents.run&target_id=7", lambda e: e.target_id == "7"),
    ],
)
def test_filters(api_as, auditor: User, events, query: str, expected) -> None:
    response = api_as(auditor).get(f"/api/audit/events/?{query}&page_size=100")
    assert response.status_code == 200
    got = {row["sequence"] for row in response.data["results"]}
    assert got == {e.sequence for e in events if expected(e)}


def test_time_and_correlation_filters(api_as, auditor: User, events) -> None:
    client = api_as(auditor)
    since = events[5].created_at.isoformat()
    response = client.get("/api/audit/events/", {"since": since, "action_prefix": "agent.", "page_size": 100})
    assert {row["sequence"] for row in response.data["results"]} == {
        e.sequence for e in events[5:] if e.action.startswith("agent.")
    }
    response = client.get("/api/audit/events/", {"correlation_id": str(events[0].correlation_id)})
    assert events[0].sequence in {row["sequence"] for row in response.data["results"]}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=yesterday", "since"),
        ("correlation_id=not-a-uuid", "correlation_id"),
        ("sequence_after=abc", "sequence_after"),
        ("cursor=not-a-cursor", "cursor"),
    ],
)
def test_bad_filter_values_get_400_with_field_errors(api_as, auditor: User, query: str, field: str) -> None:
    response = api_as(auditor).get(f"/api/audit/events/?{query}")
    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "invalid"
    assert field in body["fields"]


@pytest.mark.parametrize("role_user", ["viewer", "editor", "approver", "operator", "outsider"])
def test_other_roles_may_not_read_the_trail(api_as, request, role_user: str) -> None:
    user = request.getfixturevalue(role_user)
    client = api_as(user)
    for url in ("/api/audit/events/", "/api/audit/verify/"):
        response = client.get(url)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"


def test_anonymous_clients_are_refused(api: APIClient) -> None:
    response = api.get("/api/audit/events/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_verify_reports_an_intact_chain_and_records_the_check(api_as, auditor: User, events) -> None:
    response = api_as(auditor).get("/api/audit/verify/")
    assert response.status_code == 200
    assert response.data["ok"] is True
    assert response.data["first_broken_sequence"] is None
    check = AuditEvent.objects.order_by("-sequence").first()
    assert check is not None
    assert (check.action, check.actor_type, check.actor_label) == (
        "audit.chain.verified",
        "api_client",
        auditor.username,
    )


def test_verify_names_the_first_broken_event(api_as, auditor: User, events) -> None:
    tamper("UPDATE audit_auditevent SET target_label = 'elsewhere' WHERE sequence = %s", [events[3].sequence])
    response = api_as(auditor).get("/api/audit/verify/")
    assert response.status_code == 200
    assert response.data["ok"] is False
    assert response.data["first_broken_sequence"] == events[3].sequence
    assert AuditEvent.objects.order_by("-sequence").values_list("action", flat=True)[0] == "audit.chain.broken"
