"""Malformed input gets a clear 4xx with field errors, never a 500."""

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import get_resolver, reverse
from rest_framework.test import APIClient

from agents import runtime
from agents.models import Run
from audit.models import AuditEvent
from config.api_input import MAX_JSON_DEPTH
from config.renderers import JSONRenderer
from demo import agents as demo_agents
from governance.models import GovernedObject, ReviewItem, ReviewKind, ReviewStatus
from governance.roles import Role
from tests.agents.unit_tools import start_run

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


# What an outside fuzzer found over the whole schema, each performed exactly as it was sent.


def error_of(response: Any, status: int) -> dict[str, Any]:
    """The one error shape, with ``status``: never DRF's ``detail``, never an HTML page."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "fields"}, body
    return body["error"]


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("odd", ["abc", "null%2Cnull", "99999999999999999999999"])
@pytest.mark.parametrize("resource", ["approvals", "reviews", "releases"])
def test_an_id_that_cannot_be_one_is_a_404(api_as: Any, admin: User, resource: str, odd: str) -> None:
    client = api_as(admin)
    assert error_of(client.get(f"/api/{resource}/{odd}/"), 404)["code"] == "not_found"
    if resource != "releases":
        decided = client.post(
            f"/api/{resource}/{odd}/decide/", {"decision": "approve", "digest": "0" * 64}, format="json"
        )
        assert error_of(decided, 404)["code"] == "not_found"


@pytest.mark.parametrize("depth", [50_000, 100_000])
def test_deeply_nested_json_is_a_400_wherever_it_is_sent(api_as: Any, admin: User, outsider: User, depth: int) -> None:
    conversation = uuid.uuid4()
    bodies = {
        f"/api/conversations/{conversation}/messages/": '{"text": ' + deep_json(depth) + "}",
        "/api/agents/order-agent/runs/": '{"input": {"deep": ' + deep_json(depth) + "}}",
        "/api/agents/": '{"slug": "deep", "name": "Deep", "draft": {"deep": ' + deep_json(depth) + "}}",
        "/api/policies/evaluate/": '{"checkpoint": "input", "facts": {"deep": ' + deep_json(depth) + "}}",
    }
    for url, body in bodies.items():
        response = api_as(admin).post(url, data=body, content_type="application/json")
        error = error_of(response, 400)
        assert (error["code"], "nested deeper" in error["message"]) == ("parse_error", True), url
    assert not GovernedObject.objects.filter(slug="deep").exists()


def test_json_nested_within_the_bound_is_read(api_as: Any, viewer: User) -> None:
    facts = '{"text": "hello", "deep": ' + deep_json(MAX_JSON_DEPTH - 2) + "}"
    body = '{"checkpoint": "input", "facts": ' + facts + ', "spec": {"rules": []}}'
    response = api_as(viewer).post("/api/policies/evaluate/", data=body, content_type="application/json")
    assert response.status_code != 500
    assert response.json().get("error", {}).get("code") != "parse_error"


def test_a_lone_surrogate_is_refused_naming_the_field_and_nothing_is_stored(
    api_as: Any, editor: User, approver: User, make_user: Any, operator: User, viewer: User
) -> None:
    demo_agents.load(editor=editor, approvers=[approver, make_user("second-approver", Role.APPROVER)])
    body = '{"input": {"text": "\\ud800"}}'  # the JSON escape itself, as the fuzzer sent it
    response = api_as(operator).post("/api/agents/order-agent/runs/", data=body, content_type="application/json")
    error = error_of(response, 400)
    assert error["fields"] == {"input.text": ["A lone UTF-16 surrogate (\\ud800-\\udfff) is not text."]}
    assert not Run.objects.exists()
    assert api_as(viewer).get("/api/runs/").status_code == 200
    pair = '{"input": {"text": "\\ud83d\\ude00"}}'  # a surrogate pair is one character: text like any other
    paired = api_as(operator).post("/api/agents/order-agent/runs/", data=pair, content_type="application/json")
    assert paired.status_code == 202, paired.json()


def test_a_lone_surrogate_in_a_key_or_a_list_is_refused_too(api_as: Any, viewer: User) -> None:
    body = '{"checkpoint": "input", "facts": {"tags": ["ok", "\\udfff"], "\\ud800": 1}}'
    response = api_as(viewer).post("/api/policies/evaluate/", data=body, content_type="application/json")
    assert set(error_of(response, 400)["fields"]) <= {"facts.tags[1]", "facts.\\ud800"}


def test_text_stored_with_a_lone_surrogate_is_answered_escaped_not_a_crash() -> None:
    """Rows written before lone surrogates were refused must not break every page that lists them."""
    rendered = JSONRenderer().render({"input": {"text": "\ud800"}, "name": "Zoë"})
    assert json.loads(rendered) == {"input": {"text": "\ud800"}, "name": "Zoë"}
    assert JSONRenderer().render({"name": "Zoë"}) == '{"name":"Zoë"}'.encode()  # unescaped when it can be


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=99999999999999999999", "limit"),
        ("limit=100000", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("offset=99999999999999999999", "offset"),
        ("offset=-1", "offset"),
    ],
)
def test_a_limit_or_offset_out_of_range_is_a_400_naming_it(api_as: Any, viewer: User, query: str, field: str) -> None:
    for url in ("/api/runs/", "/api/reviews/", "/api/agents/"):
        assert set(error_of(api_as(viewer).get(f"{url}?{query}"), 400)["fields"]) == {field}, url
    assert api_as(viewer).get("/api/runs/?limit=1000&offset=0").status_code == 200


def test_an_audit_page_size_out_of_range_is_a_400_naming_it(api_as: Any, auditor: User) -> None:
    for size in ("-1", "0", "99999999999999999999"):
        response = api_as(auditor).get(f"/api/audit/events/?page_size={size}")
        assert set(error_of(response, 400)["fields"]) == {"page_size"}


def test_a_number_is_not_a_string(api_as: Any, admin: User) -> None:
    client = api_as(admin)
    message = client.post(f"/api/conversations/{uuid.uuid4()}/messages/", {"text": 42}, format="json")
    assert error_of(message, 400)["fields"] == {"text": ["Must be a string, not a number."]}
    cancel = client.post(f"/api/runs/{uuid.uuid4()}/cancel/", {"reason": 5}, format="json")
    assert error_of(cancel, 400)["fields"] == {"reason": ["Must be a string, not a number."]}
    close = client.post(f"/api/conversations/{uuid.uuid4()}/close/", {"rating": "5"}, format="json")
    assert error_of(close, 400)["fields"] == {"rating": ["Must be an integer, not a string."]}
    paused = client.patch("/api/webhooks/1/", {"active": "yes"}, format="json")
    assert error_of(paused, 400)["fields"] == {"active": ["Must be a boolean, not a string."]}
    release = client.post("/api/releases/", {"note": "n", "moves": [{"kind": "agent", "slug": 7}]}, format="json")
    assert error_of(release, 400)["fields"]["moves"] == [{"slug": ["Must be a string, not a number."]}]


def test_a_forms_values_are_strings_not_type_errors(api_as: Any, admin: User) -> None:
    closed = api_as(admin).post(f"/api/conversations/{uuid.uuid4()}/close/", {"rating": "5"})  # multipart
    assert error_of(closed, 404)["code"] == "not_found"  # past validation: there is no such conversation


def test_a_boolean_filter_is_true_or_false(api_as: Any, viewer: User) -> None:
    assert error_of(api_as(viewer).get("/api/reviews/?overdue=maybe"), 400)["fields"] == {
        "overdue": ["Use true or false."]
    }
    assert api_as(viewer).get("/api/reviews/?overdue=true").status_code == 200


def test_an_unknown_object_in_the_path_is_a_404_in_a_body_or_filter_a_400(api_as: Any, operator: User) -> None:
    client = api_as(operator)
    assert error_of(client.post("/api/agents/no-such-agent/runs/", {"input": {}}, format="json"), 404)
    started = client.post("/api/conversations/", {"persona": "no-such-persona"}, format="json")
    assert set(error_of(started, 400)["fields"]) == {"persona"}
    assert set(error_of(client.get("/api/runs/?agent=no-such-agent"), 400)["fields"]) == {"agent"}
    moves = [{"kind": "no-such-kind", "slug": "x", "label": "production", "version": 1}]
    release = api_as(operator).post("/api/releases/", {"note": "n", "moves": moves}, format="json")
    assert set(error_of(release, 400)["fields"]) == {"moves[0].kind"}


def test_error_pages_under_api_are_the_one_shape(client: Any, api_as: Any, viewer: User) -> None:
    assert error_of(client.get("/api/no-such-thing/"), 404)["code"] == "not_found"
    assert error_of(api_as(viewer).get("/api/runs/not-a-run/extra/"), 404)["code"] == "not_found"
    too_many = "&".join(f"f{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    assert error_of(api_as(viewer).get(f"/api/runs/?{too_many}"), 400)["code"] == "bad_request"
    crashed = get_resolver().resolve_error_handler(500)(RequestFactory().get("/api/runs/"))
    assert error_of(crashed, 500)["code"] == "server_error"
    assert b"<html" in client.get("/no-such-page/").content.lower()  # the console keeps Django's pages


@pytest.mark.parametrize("odd", ["abc", "null,null", "99999999999999999999999"])
@pytest.mark.parametrize("model", ["agents/run", "personas/conversation", "governance/reviewitem"])
def test_a_console_change_page_with_a_bad_id_is_a_404(client: Any, admin: User, model: str, odd: str) -> None:
    admin.is_staff = True
    admin.save(update_fields=["is_staff"])
    client.force_login(admin)
    assert client.get(f"/admin/{model}/{odd}/change/").status_code == 404


def test_a_json_typo_in_the_consoles_edited_arguments_is_a_form_error_not_a_403(
    transactional_db: None,
    client: Any,
    editor: User,
    approver: User,
    make_user: Any,
    operator: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    demo_agents.load(editor=editor, approvers=[approver, make_user("second-approver", Role.APPROVER)])
    large = {"sku": "SKU-123", "quantity": 500}  # more than 100: the replenishment waits for an approver
    run = start_run(django_capture_on_commit_callbacks, operator, "inventory-agent", large)
    runtime.advance(run.pk, "api-errors-test")
    item = ReviewItem.objects.get(kind=ReviewKind.TOOL_APPROVAL)
    client.force_login(approver)
    page = reverse("admin:governance_reviewitem_change", args=[item.pk])
    typo = {"digest": item.digest, "comment": "", "arguments": '{"sku": "SKU-123", "quantity": 50,}', "_edit": "1"}
    response = client.post(page, typo)
    assert response.status_code == 200
    assert "Enter a valid JSON." in response.content.decode()
    assert 'name="_edit"' in response.content.decode()  # the form is there to try again
    item.refresh_from_db()
    assert item.status == ReviewStatus.PENDING
