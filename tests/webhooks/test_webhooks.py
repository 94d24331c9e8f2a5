"""Webhooks against a real HTTP receiver on loopback: registration (the secret shown once, bad input, private
hosts for Admins only), signatures checked with the verification snippet of docs/webhooks.md, the five events fired
by real actions on a real Celery worker (a budget overrun among them), retries with exponential backoff, replays
from the API and the console, isolation between clients, and the HTTP tools that share the pinned-address request.

The receiver is a threaded ``http.server`` in this process: it records every request and answers with the
statuses it is told to (500 twice, then 200, ...). Endpoints on loopback need ``allow_private``, so an Admin
registers them for their owners. Tests on the worker use committed rows and the session's worker process
(``celery_worker``), which runs with the default backoff (2 s, then 4 s).
"""

import datetime as dt
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

import tests.agents.tools  # noqa: F401  # registers test.append in this process, for tools_sync
from agents import http_tools
from agents.models import ToolKind
from agents.tool_versions import ToolDefinition
from agents.tools import ToolFailure
from audit.models import AuditEvent
from demo.personas import example
from governance.demo import released
from governance.models import ReviewItem, ReviewKind, ReviewStatus
from personas.models import Conversation
from personas.services import conversation_reply
from tests.support import tools_release
from webhooks import services
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

ROOT = Path(__file__).resolve().parents[2]
ALL_EVENTS = [
    "run.finished",
    "approval.requested",
    "approval.decided",
    "conversation.escalated",
    "conversation.operator_message",
]
Clients = Callable[[User], APIClient]


def documented_verify() -> Callable[..., bool]:
    """The ``verify`` function of docs/webhooks.md, as a receiver would copy it."""
    text = (ROOT / "docs" / "webhooks.md").read_text()
    (snippet,) = [block for block in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "def verify" in block]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "docs/webhooks.md", "exec"), namespace)  # noqa: S102  # our own documentation
    verify: Callable[..., bool] = namespace["verify"]
    return verify


@pytest.fixture(scope="module")
def verify() -> Callable[..., bool]:
    return documented_verify()


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """Records requests; answers each with the next of ``statuses`` (the last one repeats), JSON ``answer``."""

    port: int = 0
    statuses: list[int] = field(default_factory=lambda: [200])
    answer: bytes = b'{"ok": true}'
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def url_for(self, user: User) -> str:
        return f"{self.url}/{user.username}"

    def received_by(self, user: User) -> list[Received]:
        with self.lock:
            return [got for got in self.requests if got.path == f"/hooks/{user.username}"]

    def respond(self, *statuses: int) -> None:
        with self.lock:
            self.statuses = list(statuses)

    def record(self, received: Received) -> int:
        with self.lock:
            self.requests.append(received)
            return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status = state.record(Received(self.command, self.path, dict(self.headers), body, time.monotonic()))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.answer)))
            self.end_headers()
            self.wfile.write(state.answer)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


# --- HTTP tools make their requests through the same pinned-address function -------------------------------------


def http_tool(url_template: str, method: str = "GET", **fields: Any) -> ToolDefinition:
    """A version of an HTTP tool's definition: what ``http_tools.call`` makes its request from."""
    values: dict[str, Any] = {"allowed_hosts": ("127.0.0.1",), "allow_private": True, **fields}
    return ToolDefinition(
        name="t",
        version=1,
        kind=ToolKind.HTTP,
        description="t",
        parameters={},
        side_effect="read",
        risk="low",
        idempotent=True,
        timeout_seconds=5,
        method=method,
        url_template=url_template,
        **values,
    )


def test_an_http_tool_sends_its_arguments_as_query_or_json_body(receiver: Receiver) -> None:
    base = f"http://127.0.0.1:{receiver.port}"
    answer = http_tools.call(http_tool(base + "/orders/{order}?x=1"), {}, {"order": "a b", "verbose": True}, 5)
    assert answer == {"ok": True}
    got = receiver.requests[-1]
    assert (got.method, got.path, got.body) == ("GET", "/orders/a%20b?x=1&verbose=true", b"")
    assert (got.headers["Accept"], got.headers["User-Agent"]) == ("application/json", "steward-http-tool")

    http_tools.call(http_tool(base + "/orders", "POST", headers={"X-Team": "ops"}), {}, {"sku": "A1", "n": 2}, 5)
    got = receiver.requests[-1]
    assert (got.method, got.path, json.loads(got.body)) == ("POST", "/orders", {"sku": "A1", "n": 2})
    assert (got.headers["Content-Type"], got.headers["X-Team"]) == ("application/json", "ops")

    receiver.answer = b"plain words"
    assert http_tools.call(http_tool(base + "/text"), {}, {}, 5) == {"status": 200, "text": "plain words"}


def test_an_http_tool_fails_on_errors_and_refused_destinations(receiver: Receiver) -> None:
    base = f"http://127.0.0.1:{receiver.port}"
    receiver.respond(404)
    with pytest.raises(ToolFailure, match=r"the server answered 404 Not Found: \{\"ok\": true\}"):
        http_tools.call(http_tool(base + "/missing"), {}, {}, 5)
    with pytest.raises(ToolFailure, match="resolves to a private or loopback address"):
        http_tools.call(http_tool(base + "/x", allow_private=False), {}, {}, 5)
    with pytest.raises(ToolFailure, match=r"the host 127\.0\.0\.1 is not among the tool's allowed hosts"):
        http_tools.call(http_tool(base + "/x", allowed_hosts=("example.com",)), {}, {}, 5)
    with pytest.raises(ToolFailure, match="not an http"):
        http_tools.call(http_tool("ftp://127.0.0.1/x"), {}, {}, 5)
    with pytest.raises(ToolFailure, match="the request failed: ConnectionRefusedError"):
        http_tools.call(http_tool("http://127.0.0.1:9/x"), {}, {}, 5)
    assert len(receiver.requests) == 1


# --- helpers ------------------------------------------------------------------------------------------------------


def register(admin_api: APIClient, owner: User, url: str, events: list[str] | None = None) -> dict[str, Any]:
    """An endpoint for ``owner``, registered by an Admin so that it may be on loopback; with its secret."""
    body = {"url": url, "events": events or ALL_EVENTS, "allow_private": True, "owner": owner.username}
    response = admin_api.post("/api/webhooks/", body, format="json")
    assert response.status_code == 201, response.json()
    created: dict[str, Any] = response.json()
    return created


def enqueue(endpoint_id: int, event: str = "run.finished", data: dict[str, Any] | None = None) -> WebhookDelivery:
    """One delivery to the endpoint, as a receiver of a signal makes it (sent after commit)."""
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_related("owner").get(pk=endpoint_id)
        (delivery,) = services.delivery_enqueue(event=event, data=data or {"run": {"id": "r1"}}, endpoints=[endpoint])
    return delivery


def payload(got: Received) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(got.body)
    return body


def assert_signed(got: Received, secret: str, verify: Callable[..., bool]) -> dict[str, Any]:
    """The request is signed with ``secret``, and its headers name its event and delivery."""
    assert verify(secret, got.headers["Steward-Signature"], got.body)
    body = payload(got)
    assert (got.method, got.headers["Content-Type"]) == ("POST", "application/json")
    assert (got.headers["Steward-Event"], got.headers["Steward-Delivery"]) == (body["event"], body["id"])
    assert set(body) == {"id", "event", "created_at", "data"}
    return body


def attempts_audited(delivery_id: Any) -> list[tuple[int, str]]:
    events = AuditEvent.objects.filter(action="webhook.delivery.attempted", target_id=str(delivery_id))
    return [(event.details["attempt"], event.details["outcome"]) for event in events.order_by("sequence")]


def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()["error"]
    return body


# --- registering --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_secret_is_shown_once_stored_encrypted_and_never_audited(
    api_as: Clients, admin: User, operator: User, receiver: Receiver
) -> None:
    created = register(api_as(admin), operator, f"{receiver.url}/x?token=receivers-own")
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(secret) > 40
    assert (created["owner"], created["allow_private"], created["active"]) == (operator.username, True, True)
    assert created["events"] == ALL_EVENTS

    mine = api_as(operator)
    listed = mine.get("/api/webhooks/").json()["results"]
    assert [endpoint["id"] for endpoint in listed] == [created["id"]]
    shown = mine.get(f"/api/webhooks/{created['id']}/").json()
    assert "secret" not in listed[0]
    assert "secret" not in shown
    assert api_as(admin).get("/api/webhooks/").json()["results"] == []  # the list is one's own, even for Admins

    stored = WebhookEndpoint.objects.get(pk=created["id"])
    assert secret not in stored.secret
    assert http_tools.decrypt_secret(stored.secret) == secret
    (event,) = AuditEvent.objects.filter(action="webhook.endpoint.created")
    assert (event.actor_label, event.target_id) == (admin.username, str(created["id"]))
    assert event.details == {
        "owner": operator.username,
        "destination": f"{receiver.url}/x",
        "events": ALL_EVENTS,
        "allow_private": True,
    }
    assert not AuditEvent.objects.filter(details__icontains=secret).exists()

    console = Client()
    console.force_login(admin)
    page = console.get(reverse("admin:webhooks_webhookendpoint_change", args=[created["id"]]))
    assert page.status_code == 200
    assert secret not in page.content.decode()
    assert stored.secret not in page.content.decode()
    assert "run.finished, approval.requested" in page.content.decode()
    # Admins pause endpoints from the console, through the same service as the API.
    changelist = reverse("admin:webhooks_webhookendpoint_changelist")
    paused = console.post(changelist, {"action": "deactivate", "_selected_action": [created["id"]]}, follow=True)
    assert "Paused: 1." in paused.content.decode()
    assert not WebhookEndpoint.objects.get(pk=created["id"]).active
    (deactivated,) = AuditEvent.objects.filter(action="webhook.endpoint.deactivated")
    assert (deactivated.actor_label, deactivated.target_id) == (admin.username, str(created["id"]))


@pytest.mark.django_db
def test_bad_input_is_a_400_with_field_errors_and_writes_nothing(
    api_as: Clients, admin: User, outsider: User, receiver: Receiver
) -> None:
    client = api_as(outsider)

    def refused(body: dict[str, Any]) -> dict[str, list[str]]:
        fields: dict[str, list[str]] = error(client.post("/api/webhooks/", body, format="json"), 400)["fields"]
        return fields

    public = "https://hooks.example.com/steward"
    assert "Unknown event(s): run.started" in refused({"url": public, "events": ["run.started"]})["events"][0]
    assert refused({"url": public, "events": []})["events"] == ["Name at least one event."]
    assert refused({"url": "ftp://hooks.example.com/x", "events": ["run.finished"]})["url"] == [
        "Give an http:// or https:// URL."
    ]
    assert "no credentials" in refused({"url": "https://me:pw@hooks.example.com/", "events": ALL_EVENTS})["url"][0]
    assert set(refused({"events": "run.finished"})) == {"url", "events"}
    # Private and loopback hosts are for Admins to allow; a non-Admin may neither use one nor allow it.
    for url in (receiver.url, "http://10.1.2.3/hook", "http://localhost:8000/", "http://[::1]/"):
        assert "private or loopback address" in refused({"url": url, "events": ALL_EVENTS})["url"][0], url
    fields = refused({"url": receiver.url, "events": ALL_EVENTS, "allow_private": True})
    assert fields["allow_private"] == ["Only an Admin may allow private and loopback addresses."]
    assert "private or loopback address" in fields["url"][0]
    assert refused({"url": public, "events": ALL_EVENTS, "owner": admin.username})["owner"] == [
        "Only an Admin may register an endpoint for someone else."
    ]
    as_admin = api_as(admin).post(
        "/api/webhooks/", {"url": public, "events": ALL_EVENTS, "owner": "nobody"}, format="json"
    )
    assert error(as_admin, 400)["fields"] == {"owner": ["There is no such user."]}
    assert not WebhookEndpoint.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="webhook.").exists()


# --- signing, attempts and retries (in this process) ----------------------------------------------------------------


@pytest.mark.django_db
def test_a_delivery_is_signed_with_the_endpoints_secret(
    api_as: Clients,
    admin: User,
    operator: User,
    receiver: Receiver,
    verify: Callable[..., bool],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    created = register(api_as(admin), operator, receiver.url_for(operator))
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        delivery = enqueue(created["id"], data={"run": {"id": "r1", "answer": "Grüße"}})
    assert len(enqueued) == 1  # sent after commit, once
    assert services.delivery_attempt(delivery_id=delivery.pk) is None

    (got,) = receiver.requests
    body = assert_signed(got, created["secret"], verify)
    assert body == {
        "id": str(delivery.pk),
        "event": "run.finished",
        "created_at": delivery.created_at.isoformat(),
        "data": {"run": {"id": "r1", "answer": "Grüße"}},
    }
    header = got.headers["Steward-Signature"]
    timestamp = int(header.split(",")[0].removeprefix("t="))
    assert abs(time.time() - timestamp) < 5
    assert not verify(created["secret"], header, got.body.replace(b"r1", b"r2"))  # a tampered body
    assert not verify("whsec_another", header, got.body)  # another secret
    assert not verify(created["secret"], header, got.body, now=timestamp + 301)  # too old
    assert verify(created["secret"], header, got.body, now=timestamp + 299)
    assert not verify(created["secret"], "v1=" + header.split("v1=")[1], got.body)  # no timestamp

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_response_status) == (DeliveryStatus.SUCCEEDED, 1, 200)
    assert (delivery.last_response_body, delivery.last_error) == ('{"ok": true}', "")
    assert delivery.delivered_at is not None
    assert delivery.claimed_until is None
    assert attempts_audited(delivery.pk) == [(1, "delivered")]
    assert services.delivery_attempt(delivery_id=delivery.pk) is None  # a second message makes no request
    assert len(receiver.requests) == 1
    assert not AuditEvent.objects.filter(details__icontains=created["secret"]).exists()


@pytest.mark.django_db
def test_failed_attempts_back_off_then_fail_and_refusals_are_not_retried(
    api_as: Clients, admin: User, operator: User, receiver: Receiver, settings: Any
) -> None:
    assert [services.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [2, 4, 8, 16]  # the default base
    settings.WEBHOOKS_BACKOFF_SECONDS, settings.WEBHOOKS_MAX_ATTEMPTS = 0, 3
    receiver.respond(500)
    delivery = enqueue(register(api_as(admin), operator, receiver.url_for(operator))["id"])
    for _ in range(2):
        assert services.delivery_attempt(delivery_id=delivery.pk) is not None  # come back (at once: base 0)
    assert services.delivery_attempt(delivery_id=delivery.pk) is None
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_response_status) == (DeliveryStatus.FAILED, 3, 500)
    assert delivery.last_error == "the endpoint answered 500 Internal Server Error"
    assert attempts_audited(delivery.pk) == [(1, "retrying"), (2, "retrying"), (3, "failed")]
    assert len(receiver.received_by(operator)) == 3

    # A connection error is retried; a message arriving before the next attempt is due makes no request.
    settings.WEBHOOKS_BACKOFF_SECONDS = 60
    closed = enqueue(register(api_as(admin), operator, "http://127.0.0.1:9/closed")["id"])
    retry_at = services.delivery_attempt(delivery_id=closed.pk)
    assert retry_at is not None
    assert 59 < (retry_at - closed.created_at).total_seconds() < 70
    assert services.delivery_attempt(delivery_id=closed.pk) == retry_at
    closed.refresh_from_db()
    assert (closed.status, closed.attempts, closed.last_response_status) == (DeliveryStatus.PENDING, 1, None)
    assert closed.last_error.startswith("the request failed: ConnectionRefusedError")
    # Still being retried: not replayable yet.
    replay = f"/api/webhooks/{closed.endpoint_id}/deliveries/{closed.pk}/replay/"
    assert error(api_as(operator).post(replay), 409)["code"] == "pending"
    # Unless its next attempt is long overdue: its task was lost (here: never sent, as nothing commits).
    WebhookDelivery.objects.filter(pk=closed.pk).update(next_attempt_at=timezone.now() - dt.timedelta(minutes=2))
    assert api_as(operator).post(replay).status_code == 202

    # A paused endpoint fails its pending deliveries at once, without a request.
    paused = enqueue(register(api_as(admin), operator, receiver.url_for(operator))["id"])
    response = api_as(operator).patch(f"/api/webhooks/{paused.endpoint_id}/", {"active": False}, format="json")
    assert (response.status_code, response.json()["active"]) == (200, False)
    assert services.delivery_attempt(delivery_id=paused.pk) is None
    paused.refresh_from_db()
    assert (paused.status, paused.attempts, paused.last_error) == (DeliveryStatus.FAILED, 1, "the endpoint is inactive")
    assert len(receiver.received_by(operator)) == 3
    assert AuditEvent.objects.filter(action="webhook.endpoint.deactivated", target_id=str(paused.endpoint_id)).exists()


# --- isolation ----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_another_clients_endpoints_and_deliveries_are_404(
    api_as: Clients, admin: User, operator: User, outsider: User, receiver: Receiver
) -> None:
    created = register(api_as(admin), operator, receiver.url_for(operator))
    delivery = enqueue(created["id"])
    base = f"/api/webhooks/{created['id']}"
    other = api_as(outsider)
    assert other.get("/api/webhooks/").json()["results"] == []
    for response in (
        other.get(f"{base}/"),
        other.patch(f"{base}/", {"active": False}, format="json"),
        other.delete(f"{base}/"),
        other.get(f"{base}/deliveries/"),
        other.get(f"{base}/deliveries/{delivery.pk}/"),
        other.post(f"{base}/deliveries/{delivery.pk}/replay/"),
        api_as(operator).get(f"{base}/deliveries/{uuid.uuid4()}/"),
        api_as(operator).get("/api/webhooks/not-a-number/"),
    ):
        assert error(response, 404)["code"] == "not_found"
    assert WebhookEndpoint.objects.get(pk=created["id"]).active

    mine = api_as(operator)
    (listed,) = mine.get(f"{base}/deliveries/").json()["results"]
    assert (listed["id"], listed["status"], listed["payload"]["id"]) == (str(delivery.pk), "pending", str(delivery.pk))
    assert mine.delete(f"{base}/").status_code == 204
    assert not WebhookEndpoint.objects.exists()
    assert not WebhookDelivery.objects.exists()
    (deleted,) = AuditEvent.objects.filter(action="webhook.endpoint.deleted")
    assert (deleted.actor_label, deleted.target_id, deleted.details["deliveries"]) == (
        operator.username,
        str(created["id"]),
        1,
    )


# --- on the worker ------------------------------------------------------------------------------------------------


AGENT: dict[str, Any] = {
    "instructions": "An agent for the webhook tests.",
    "model": {"provider": "scripted", "name": "test-script"},
    "autonomy": "autonomous",
    "budgets": {"steps": 20},
    "grants": [{"tool": "test.append", "approval": "always"}],
    "script": [
        {"call": "test.append", "arguments": {"path": "input.path", "text": "input.text", "quantity": "1"}},
        {"when": "has(last.error)", "answer": "Not written: {{ last.error }}"},
        {"answer": "Wrote {{ last.text }}."},
    ],
}


def wait_for_requests(receiver: Receiver, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.requests) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"{len(receiver.requests)} requests received, not {count}: {receiver.requests}")
        time.sleep(0.05)


def settled(delivery: Any, timeout: float = 20) -> WebhookDelivery:
    """The delivery (or delivery id) once it has succeeded or failed."""
    delivery_id = getattr(delivery, "pk", delivery)
    deadline = time.monotonic() + timeout
    while (delivery := WebhookDelivery.objects.get(pk=delivery_id)).status == DeliveryStatus.PENDING:
        if time.monotonic() > deadline:
            pytest.fail(f"delivery {delivery_id} still pending after {delivery.attempts} attempt(s)")
        time.sleep(0.05)
    return delivery


def run_approval(run_id: str) -> int:
    """The id of the run's pending approval, once the worker has parked it."""
    item = ReviewItem.objects.get(kind=ReviewKind.TOOL_APPROVAL, status=ReviewStatus.PENDING)
    assert item.payload["run"] == run_id
    return item.pk


@pytest.mark.usefixtures("celery_worker")
@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_the_five_events_reach_whoever_may_see_them(
    api_as: Clients,
    make_user: Callable[..., User],
    admin: User,
    editor: User,
    approver: User,
    operator: User,
    viewer: User,
    receiver: Receiver,
    verify: Callable[..., bool],
    tmp_path: Path,
) -> None:
    client = make_user("cleo-client")
    tools_release(approver)
    released(editor, [approver], "agent", "hooked", "Hooked", AGENT)
    released(editor, [approver], "style_guide", "brand-voice", "Brand voice", example("brand-voice"))
    released(editor, [approver], "persona", "support", "Sam", example("support"))
    as_admin = api_as(admin)
    secrets = {
        user: register(as_admin, user, receiver.url_for(user))["secret"] for user in (operator, approver, client)
    }
    register(as_admin, viewer, receiver.url_for(viewer))  # may decide nothing, asked for nothing: hears nothing

    # A run waits for approval: its requester and the approvers hear of it.
    run = (
        api_as(operator)
        .post("/api/agents/hooked/runs/", {"input": {"path": str(tmp_path / "lines"), "text": "hello"}}, format="json")
        .json()
    )
    wait_for_requests(receiver, 2)
    approval = api_as(approver).get(f"/api/approvals/{run_approval(run['id'])}/").json()
    # The approver decides; the run resumes on the worker and finishes.
    decided = api_as(approver).post(
        f"/api/approvals/{approval['id']}/decide/", {"decision": "approve", "digest": approval["digest"]}, format="json"
    )
    assert decided.status_code == 200, decided.json()
    # A client's conversation is handed to a person, and an Operator answers.
    as_client = api_as(client)
    conversation = as_client.post("/api/conversations/", {"persona": "support"}, format="json").json()["id"]
    turn = as_client.post(
        f"/api/conversations/{conversation}/messages/", {"text": "can I talk to a person"}, format="json"
    ).json()
    assert turn["status"] == "escalated"
    reply = conversation_reply(actor=operator, conversation=Conversation.objects.get(pk=conversation), text="Hi!")
    wait_for_requests(receiver, 7)

    def heard(user: User) -> dict[str, dict[str, Any]]:
        bodies = [assert_signed(got, secrets[user], verify) for got in receiver.received_by(user)]
        assert len({body["event"] for body in bodies}) == len(bodies)
        return {body["event"]: body["data"] for body in bodies}

    by_operator = heard(operator)
    assert set(by_operator) == {"approval.requested", "approval.decided", "run.finished"}
    requested = by_operator["approval.requested"]["approval"]
    assert requested == {
        **requested,
        "id": approval["id"],
        "kind": "tool_approval",
        "status": "pending",
        "run": run["id"],
        "tool": "test.append",
        "question": "approval",
        "decided_at": None,
    }
    assert "always needs approval" in requested["reason"]
    assert (requested["risk"], requested["digest"]) == (approval["risk"], approval["digest"])
    assert by_operator["approval.decided"]["approval"]["status"] == "approved"
    assert by_operator["approval.decided"]["approval"]["decided_at"] is not None
    assert by_operator["run.finished"] == {
        "run": {
            **by_operator["run.finished"]["run"],
            "id": run["id"],
            "agent": "hooked",
            "status": "succeeded",
            "error": "",
            "result": {"answer": "Wrote hello."},
        }
    }
    assert heard(approver) == {key: by_operator[key] for key in ("approval.requested", "approval.decided")}
    assert heard(client) == {
        "conversation.escalated": {
            "conversation": {
                "id": conversation,
                "status": "escalated",
                "escalation_reason": "The user asked for a person.",
                "persona": "support",
            }
        },
        "conversation.operator_message": {
            "conversation": {
                "id": conversation,
                "status": "escalated",
                "escalation_reason": "The user asked for a person.",
            },
            "message": {
                "seq": reply.seq,
                "role": "operator",
                "text": "Hi!",
                "created_at": reply.created_at.isoformat(),
            },
        },
    }
    assert receiver.received_by(viewer) == []
    assert not WebhookDelivery.objects.filter(endpoint__owner=viewer).exists()
    deliveries = WebhookDelivery.objects.all()
    assert deliveries.count() == 7
    assert {(d.status, d.attempts, d.last_response_status) for d in map(settled, deliveries)} == {
        (DeliveryStatus.SUCCEEDED, 1, 200)
    }
    # Each delivery shares the correlation id of the action that caused it.
    finished = WebhookDelivery.objects.get(event="run.finished")
    assert str(finished.correlation_id) == run["correlation_id"]


@pytest.mark.usefixtures("celery_worker")
@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_budget_overrun_is_announced_as_an_approval_and_its_refusal_as_the_run_failing(
    api_as: Clients,
    admin: User,
    editor: User,
    approver: User,
    operator: User,
    receiver: Receiver,
    verify: Callable[..., bool],
    tmp_path: Path,
) -> None:
    tools_release(approver)
    frugal = {
        **AGENT,
        "budgets": {"steps": 1},
        "escalation": {"budget_overrun": "review"},
        "grants": [{"tool": "test.append"}],
    }
    released(editor, [approver], "agent", "frugal", "Frugal", frugal)
    secret = register(api_as(admin), operator, receiver.url_for(operator))["secret"]
    lines = tmp_path / "lines"
    run = (
        api_as(operator)
        .post("/api/agents/frugal/runs/", {"input": {"path": str(lines), "text": "hello"}}, format="json")
        .json()
    )
    wait_for_requests(receiver, 1)  # the worker parked the run before the tool call: a person is asked
    item = ReviewItem.objects.get(kind=ReviewKind.BUDGET_OVERRUN, status=ReviewStatus.PENDING)
    approval = api_as(approver).get(f"/api/approvals/{item.pk}/").json()
    refused = api_as(approver).post(
        f"/api/approvals/{item.pk}/decide/", {"decision": "reject", "digest": approval["digest"]}, format="json"
    )
    assert refused.status_code == 200, refused.json()
    wait_for_requests(receiver, 3)

    bodies = {
        body["event"]: body["data"]
        for body in (assert_signed(got, secret, verify) for got in receiver.received_by(operator))
    }
    requested = bodies["approval.requested"]["approval"]
    assert requested == {
        **requested,
        "id": item.pk,
        "kind": "budget_overrun",
        "status": "pending",
        "run": run["id"],
        "tool": "",
        "question": "budget_overrun",
    }
    assert requested["reason"].startswith("The step budget (1) would be exceeded, before a tool call")
    assert bodies["approval.decided"]["approval"]["status"] == "rejected"
    finished = bodies["run.finished"]["run"]
    assert (finished["status"], finished["error"]) == (
        "failed",
        f"Budget: the step budget (1) would be exceeded; rejected by {approver.username} (Approver).",
    )
    assert not lines.exists()  # the tool was never called


@pytest.mark.usefixtures("celery_worker")
@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_failing_endpoint_is_retried_with_exponential_backoff(
    api_as: Clients, admin: User, operator: User, receiver: Receiver, verify: Callable[..., bool]
) -> None:
    receiver.respond(500, 500, 200)
    created = register(api_as(admin), operator, receiver.url_for(operator))
    delivery = settled(enqueue(created["id"]).pk, timeout=30)
    assert (delivery.status, delivery.attempts, delivery.last_response_status) == (DeliveryStatus.SUCCEEDED, 3, 200)
    assert delivery.last_error == ""
    assert attempts_audited(delivery.pk) == [(1, "retrying"), (2, "retrying"), (3, "delivered")]
    first, second, third = receiver.requests
    assert first.body == second.body == third.body  # the same payload, signed afresh each time
    assert {assert_signed(got, created["secret"], verify)["id"] for got in receiver.requests} == {str(delivery.pk)}
    # The default backoff: 2 s after the first failure, 4 s after the second.
    assert 1.9 < second.at - first.at < 3.5
    assert 3.9 < third.at - second.at < 5.5


@pytest.mark.usefixtures("celery_worker")
@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_delivery_is_replayed_from_the_api_and_from_the_console(
    api_as: Clients,
    make_user: Callable[..., User],
    admin: User,
    operator: User,
    receiver: Receiver,
    verify: Callable[..., bool],
) -> None:
    created = register(api_as(admin), operator, receiver.url_for(operator))
    delivery = settled(enqueue(created["id"]).pk)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SUCCEEDED, 1)

    # The owner replays it through the API: one more attempt, the same delivery.
    path = f"/api/webhooks/{created['id']}/deliveries/{delivery.pk}/replay/"
    response = api_as(operator).post(path)
    assert response.status_code == 202, response.json()
    assert (response.json()["status"], response.json()["attempts"]) == ("pending", 1)
    wait_for_requests(receiver, 2)
    delivery = settled(delivery.pk)
    assert (delivery.status, delivery.attempts, delivery.replayed_at is not None) == (DeliveryStatus.SUCCEEDED, 2, True)

    # An Admin replays it from the console; the endpoint fails now, and a replay is not retried.
    receiver.respond(503)
    console = Client()
    console.force_login(admin)
    changelist = reverse("admin:webhooks_webhookdelivery_changelist")
    answer = console.post(changelist, {"action": "replay", "_selected_action": [str(delivery.pk)]}, follow=True)
    assert "Replayed: 1." in answer.content.decode()
    wait_for_requests(receiver, 3)
    delivery = settled(delivery.pk)
    assert (delivery.status, delivery.attempts, delivery.last_response_status) == (DeliveryStatus.FAILED, 3, 503)
    assert attempts_audited(delivery.pk) == [(1, "delivered"), (2, "delivered"), (3, "failed")]
    replays = AuditEvent.objects.filter(action="webhook.delivery.replayed", target_id=str(delivery.pk))
    assert list(replays.order_by("sequence").values_list("actor_label", flat=True)) == [
        operator.username,
        admin.username,
    ]
    assert [assert_signed(got, created["secret"], verify)["id"] for got in receiver.requests] == [str(delivery.pk)] * 3

    # Replaying is gated: whoever may only look at deliveries gets no replay action.
    looker = make_user("lou-looker")
    looker.is_staff = True
    looker.save(update_fields=["is_staff"])
    looker.user_permissions.add(Permission.objects.get(codename="view_webhookdelivery"))
    console.force_login(looker)
    page = console.get(changelist).content.decode()
    assert str(delivery.pk)[:8] in page
    assert 'value="replay"' not in page
    refused = console.post(changelist, {"action": "replay", "_selected_action": [str(delivery.pk)]})
    assert refused.status_code == 200  # the list again, nothing done
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.FAILED
    assert replays.count() == 2
    assert len(receiver.requests) == 3


@pytest.mark.django_db
def test_the_sweeper_hands_lost_deliveries_back_to_a_worker(
    api_as: Clients, admin: User, operator: User, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    created = register(api_as(admin), operator, receiver.url_for(operator))
    with django_capture_on_commit_callbacks() as sent:
        lost = enqueue(created["id"])
        held = enqueue(created["id"])
        fresh = enqueue(created["id"])
    assert len(sent) == 3
    long_ago = timezone.now() - dt.timedelta(minutes=5)
    WebhookDelivery.objects.filter(pk__in=[lost.pk, held.pk]).update(next_attempt_at=long_ago)
    WebhookDelivery.objects.filter(pk=held.pk).update(claimed_until=timezone.now() + dt.timedelta(minutes=1))
    with django_capture_on_commit_callbacks() as swept:
        assert services.deliveries_sweep() == 1  # the lost one: not the one an attempt holds, not the fresh one
    assert len(swept) == 1
    assert fresh.status == "pending"
