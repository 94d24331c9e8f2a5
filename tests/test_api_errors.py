"""Malformed input gets a clear 4xx with field errors, never a 500."""

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.test import APIClient

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db
TOKEN_URL = "/api/auth/token/"


def test_token_for_good_credentials(api: APIClient, operator: User) -> None:
    response = api.post(TOKEN_URL, {"username": operator.username, "password": "correct horse battery"}, format="json")
    assert response.status_code == 200
    assert len(response.json()["token"]) == 40
    event = AuditEvent.objects.filter(action="auth.token.issued").get()
    assert (event.actor_label, event.details) == (operator.username, {"ip": "127.0.0.1", "new": True})


def test_bad_json_is_a_400(api: APIClient) -> None:
    response = api.post(TOKEN_URL, data='{"username": "x", ', content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "parse_error"
    assert "JSON" in error["message"]


def test_wrong_types_get_field_errors(api: APIClient) -> None:
    response = api.post(TOKEN_URL, {"username": ["a", "list"], "password": {"an": "object"}}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"username", "password"}


def test_missing_fields_get_field_errors(api: APIClient) -> None:
    response = api.post(TOKEN_URL, {}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "username": ["This field is required."],
        "password": ["This field is required."],
    }


def test_unsupported_media_type_is_a_415(api: APIClient) -> None:
    response = api.post(TOKEN_URL, data="<xml/>", content_type="application/xml")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_wrong_method_is_a_405(api_as, auditor: User) -> None:
    response = api_as(auditor).post("/api/audit/events/", {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_schema_and_docs_are_served_from_here(client) -> None:
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/audit/events/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn." not in docs.content
    assert b"unpkg" not in docs.content


def test_the_schema_is_generated_without_warnings(tmp_path: Path) -> None:
    """Every path parameter typed, every model found, every enum named after its model: nothing left to guess."""
    call_command("spectacular", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    schema = (tmp_path / "schema.yml").read_text()
    assert "RunStatusEnum:" in schema
    assert "ConversationStatusEnum:" in schema
