"""Conversations with personas through the API: starting against a released version (and staying pinned to it),
deterministic replies, the style guide and the guardrail policies at run time, personal data in transcripts, the
hand-over to a person and back, closing, isolation between clients, bad input; every step in the audit trail.

The style guide, personas and policies are taken through the real lifecycle (draft, submit, four-eyes review,
release) by the services, as the console and the API would.
"""

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from audit.context import Actor
from audit.models import AuditEvent
from audit.services import audit_chain_verify
from config.errors import Conflict, NotAllowed
from governance.guardrails import POLICY_KIND
from governance.models import (
    Decision,
    GovernedObject,
    ReviewDecision,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
    Version,
    VersionStatus,
)
from governance.roles import Role as UserRole
from governance.services import (
    Move,
    draft_update,
    governed_object_create,
    release_create,
    review_decide,
    review_items_expire,
    version_submit,
)
from personas.models import Conversation, ConversationStatus, Message
from personas.services import (
    PERSONA_KIND,
    STYLE_GUIDE_KIND,
    conversation_close,
    conversation_hand_back,
    conversation_reply,
)

pytestmark = pytest.mark.django_db

GUIDE: dict[str, Any] = {
    "description": "Plain and friendly.",
    "banned": [
        {"phrase": "bananas", "severity": "block", "reason": "Off brand."},
        {"phrase": "no worries", "severity": "warn", "suggestion": "happy to help"},
    ],
    "substitutions": [{"phrase": "asap", "replacement": "as soon as we can"}],
    "examples": [
        {"text": "Thanks, we are on it.", "compliant": True},
        {"text": "Bananas for everyone.", "compliant": False},
    ],
}

GREETING = "Hello, I'm Penny. How can I help?"
FALLBACK = "Sorry, I didn't follow that."
HANDOVER = "A colleague will take over here shortly."
HANDED_BACK = "I'm back with you now. What next?"

PERSONA: dict[str, Any] = {
    "tone": "Plain.",
    "greeting": "Hello, I'm {{persona_name}}. How can I help?",
    "fallback": FALLBACK,
    "handover": HANDOVER,
    "style_guide": {"slug": "voice", "version": 1},
    "pii": "keep",
    "messages": {"handed_back": HANDED_BACK},
    "flows": [
        {
            "id": "repeat",
            "trigger": {"keywords": ["repeat"]},
            "steps": [
                {"id": "ask_thing", "type": "ask", "slot": "thing", "prompt": "What should I repeat?"},
                {"id": "said", "type": "end", "text": "You said: {{thing}}"},
            ],
        },
        {
            "id": "chase",
            "trigger": {"keywords": ["chase"]},
            "steps": [{"id": "promise", "type": "end", "text": "We will chase it asap."}],
        },
        {
            "id": "thanks",
            "trigger": {"keywords": ["thanks"]},
            "steps": [{"id": "reply", "type": "end", "text": "No worries, glad to help."}],
        },
        {
            "id": "contact",
            "trigger": {"keywords": ["contact"]},
            "steps": [
                {"id": "ask_email", "type": "ask", "slot": "email", "slot_type": "email", "prompt": "Your e-mail?"},
                {"id": "ask_phone", "type": "ask", "slot": "phone", "prompt": "And a phone number?"},
                {"id": "done", "type": "end", "text": "We will write to {{email}} or call {{phone}}."},
            ],
        },
    ],
}

DENY_FORBIDDEN: dict[str, Any] = {
    "checkpoint": "input",
    "condition": 'text.contains("forbidden")',
    "effect": "deny",
    "severity": "high",
    "message": "I can't talk about that here.",
}
REDACT_EMAILS: dict[str, Any] = {
    "checkpoint": "input",
    "condition": "pii_found",
    "effect": "redact",
    "redact": ["email"],
    "severity": "medium",
}
ESCALATE_CHASING: dict[str, Any] = {
    "checkpoint": "output",
    "condition": 'text.contains("chase")',
    "effect": "escalate",
    "severity": "high",
    "message": "Chasing needs a person.",
}

EMAIL = "sam@example.com"
PHONE = "+44 20 7946 0958"


@dataclass
class Lifecycle:
    """Takes specs from draft to a release, as the editor and the approvers would through the services."""

    editor: User
    approvers: tuple[User, User]

    def submit(self, kind: str, slug: str, spec: dict[str, Any], name: str = "") -> Version:
        obj = GovernedObject.objects.filter(kind=kind, slug=slug).first()
        if obj is None:
            obj = governed_object_create(actor=self.editor, kind=kind, slug=slug, name=name or slug, draft=spec)
        else:
            obj = draft_update(actor=self.editor, obj=obj, draft=spec)
        return version_submit(actor=self.editor, obj=obj, note=f"{slug} for the tests")

    def approve(self, version: Version) -> Version:
        for approver in self.approvers:
            item = version.reviews.get()
            if item.status != ReviewStatus.PENDING:
                break
            review_decide(actor=approver, item=item, decision="approve", digest=item.digest, comment="fine")
        version.refresh_from_db()
        assert version.status == VersionStatus.APPROVED
        return version

    def release(
        self, kind: str, slug: str, spec: dict[str, Any], *, name: str = "", label: str = "production"
    ) -> Version:
        version = self.approve(self.submit(kind, slug, spec, name))
        release_create(
            actor=self.approvers[0], note=f"{slug} v{version.number}", moves=[Move(version.object, label, version)]
        )
        return version

    def policy(self, slug: str, spec: dict[str, Any]) -> Version:
        return self.release(POLICY_KIND, slug, spec)


@pytest.fixture
def lifecycle(editor: User, approver: User, make_user: Callable[..., User]) -> Lifecycle:
    # Guardrail policies need two distinct approvers (GOVERNANCE_TWO_APPROVER_KINDS).
    return Lifecycle(editor, (approver, make_user("bert-approver", UserRole.APPROVER)))


@pytest.fixture
def guide(lifecycle: Lifecycle) -> Version:
    return lifecycle.release(STYLE_GUIDE_KIND, "voice", GUIDE, name="Voice")


@pytest.fixture
def helper(lifecycle: Lifecycle, guide: Version) -> Version:
    return lifecycle.release(PERSONA_KIND, "helper", PERSONA, name="Penny")


@pytest.fixture
def private_helper(lifecycle: Lifecycle, guide: Version) -> Version:
    return lifecycle.release(PERSONA_KIND, "private", {**PERSONA, "pii": "redact"}, name="Penny")


@pytest.fixture
def client_user(make_user: Callable[..., User]) -> User:
    return make_user("cleo-client")


@pytest.fixture
def as_client(api_as: Callable[[User], APIClient], client_user: User) -> APIClient:
    return api_as(client_user)


def start(client: APIClient, persona: str = "helper", **extra: Any) -> dict[str, Any]:
    response = client.post("/api/conversations/", {"persona": persona, **extra}, format="json")
    assert response.status_code == 201, response.json()
    body: dict[str, Any] = response.json()
    return body


def say(client: APIClient, conversation: str, text: str) -> dict[str, Any]:
    response = client.post(f"/api/conversations/{conversation}/messages/", {"text": text}, format="json")
    assert response.status_code == 201, response.json()
    body: dict[str, Any] = response.json()
    return body


def transcript(client: APIClient, conversation: str) -> dict[str, Any]:
    response = client.get(f"/api/conversations/{conversation}/")
    assert response.status_code == 200, response.json()
    body: dict[str, Any] = response.json()
    return body


def texts(turn: dict[str, Any]) -> list[str]:
    return [reply["text"] for reply in turn["replies"]]


def flag_kinds(message: dict[str, Any]) -> list[str]:
    return [flag["kind"] for flag in message["flags"]]


def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    return body["error"]


def events(conversation: str, action: str | None = None) -> list[AuditEvent]:
    recorded = AuditEvent.objects.filter(target_type="personas.conversation", target_id=conversation)
    if action is not None:
        recorded = recorded.filter(action=action)
    return list(recorded.order_by("sequence"))


def handover_item(conversation: str) -> ReviewItem:
    return ReviewItem.objects.get(kind=ReviewKind.HANDOVER, subject_id=conversation)


# --- starting -----------------------------------------------------------------------------------------------------


def test_a_conversation_starts_on_the_released_version_with_the_greeting(
    as_client: APIClient, client_user: User, helper: Version
) -> None:
    body = start(as_client, label="production")

    assert (body["persona"], body["version"], body["label"], body["status"]) == ("helper", 1, "production", "active")
    assert [(m["seq"], m["role"], m["text"]) for m in body["messages"]] == [(1, "persona", GREETING)]
    conversation = Conversation.objects.get(pk=body["id"])
    assert (conversation.version, conversation.client) == (helper, client_user)
    (started,) = events(body["id"], "persona.conversation.started")
    assert (started.actor_type, started.actor_id, started.actor_label) == (
        "api_client",
        str(client_user.pk),
        client_user.username,
    )
    assert started.details == {
        "persona": "helper",
        "version": 1,
        "label": "production",
        "policies": [],
        "messages": [1],
    }


def test_the_label_defaults_to_production(as_client: APIClient, helper: Version) -> None:
    assert start(as_client)["label"] == "production"


def test_an_unknown_persona_is_a_field_error(as_client: APIClient, helper: Version) -> None:
    """Named in the body, not in the path: a 400 naming the field, as every unknown reference in a body is."""
    before = AuditEvent.objects.count()
    response = as_client.post("/api/conversations/", {"persona": "nobody"}, format="json")
    assert error(response, 400)["fields"] == {"persona": ["There is no persona 'nobody'."]}
    assert not Conversation.objects.exists()
    assert AuditEvent.objects.count() == before


def test_a_persona_with_nothing_released_under_the_label_is_a_conflict(
    as_client: APIClient, lifecycle: Lifecycle, helper: Version
) -> None:
    lifecycle.submit(PERSONA_KIND, "unreleased", PERSONA)  # submitted, never released
    for body in ({"persona": "unreleased"}, {"persona": "helper", "label": "staging"}):
        found = error(as_client.post("/api/conversations/", body, format="json"), 409)
        assert found["code"] == "label_unset", body
        assert "release one first" in found["message"]
    assert not Conversation.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "persona"),
        ({"persona": "Not a slug!"}, "persona"),
        ({"persona": ["helper"]}, "persona"),
        ({"persona": None}, "persona"),
        ({"persona": "x" * 81}, "persona"),
        ({"persona": "helper", "label": "no such label!"}, "label"),
        ({"persona": "helper", "label": {"name": "production"}}, "label"),
    ],
)
def test_a_malformed_start_is_refused_with_field_errors(
    as_client: APIClient, helper: Version, body: dict[str, Any], field: str
) -> None:
    found = error(as_client.post("/api/conversations/", body, format="json"), 400)
    assert found["code"] == "invalid"
    assert list(found["fields"]) == [field]
    assert not Conversation.objects.exists()


def test_a_body_that_is_not_json_is_refused(as_client: APIClient, helper: Version) -> None:
    response = as_client.post("/api/conversations/", data='{"persona": "helper"', content_type="application/json")
    assert error(response, 400)["code"] == "parse_error"
    assert not Conversation.objects.exists()


def test_conversations_need_an_authenticated_client(api: APIClient, helper: Version) -> None:
    anonymous = api.post("/api/conversations/", {"persona": "helper"}, format="json")
    assert error(anonymous, 401)["code"] == "not_authenticated"
    assert error(api.get("/api/conversations/"), 401)["code"] == "not_authenticated"
    api.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    forged = api.post("/api/conversations/", {"persona": "helper"}, format="json")
    assert error(forged, 401)["code"] == "authentication_failed"
    assert not Conversation.objects.exists()


# --- replies: deterministic, pinned -------------------------------------------------------------------------------

SCRIPT = ["repeat", "the blue one", "what?", "chase", "thanks", "contact", "not an address", EMAIL, "0123", "cancel"]


def test_the_same_messages_get_the_same_replies(as_client: APIClient, helper: Version) -> None:
    def run() -> list[list[tuple[str, str, str, list[str]]]]:
        conversation = start(as_client)["id"]
        return [
            [(r["text"], r["flow"], r["step"], flag_kinds(r)) for r in say(as_client, conversation, text)["replies"]]
            for text in SCRIPT
        ]

    first, second = run(), run()
    assert first == second
    assert first[1] == [("You said: the blue one", "repeat", "said", [])]
    assert first[2] == [(FALLBACK, "", "", [])]
    assert first[6][0][0].startswith("Please give an e-mail address")


def test_a_conversation_stays_on_the_version_it_started_with(
    as_client: APIClient, lifecycle: Lifecycle, helper: Version
) -> None:
    old = start(as_client)
    v2 = lifecycle.release(
        PERSONA_KIND, "helper", {**PERSONA, "greeting": "Hi there, {{persona_name}} here.", "fallback": "Pardon?"}
    )
    assert v2.number == 2

    assert texts(say(as_client, old["id"], "what?")) == [FALLBACK]
    assert transcript(as_client, old["id"])["version"] == 1

    new = start(as_client)
    assert (new["version"], new["messages"][0]["text"]) == (2, "Hi there, Penny here.")
    assert texts(say(as_client, new["id"], "what?")) == ["Pardon?"]
    assert texts(say(as_client, old["id"], "what?")) == [FALLBACK]
    assert events(new["id"], "persona.conversation.started")[0].details["version"] == 2


# --- the style guide at run time ----------------------------------------------------------------------------------


def test_a_reply_with_a_blocked_phrase_is_replaced_by_the_fallback(as_client: APIClient, helper: Version) -> None:
    conversation = start(as_client)["id"]
    say(as_client, conversation, "repeat")
    turn = say(as_client, conversation, "bananas are great")

    assert turn["message"]["text"] == "bananas are great"  # the user's words are stored as written
    (reply,) = turn["replies"]
    assert reply["text"] == FALLBACK
    assert flag_kinds(reply) == ["style.block"]
    assert "bananas" in reply["flags"][0]["violations"][0]
    stored = transcript(as_client, conversation)["messages"][-1]
    assert (stored["text"], flag_kinds(stored)) == (FALLBACK, ["style.block"])
    assert events(conversation, "persona.conversation.turn")[-1].details["flags"] == ["style.block"]


def test_a_substitution_is_rewritten(as_client: APIClient, helper: Version) -> None:
    conversation = start(as_client)["id"]
    (reply,) = say(as_client, conversation, "please chase my order")["replies"]
    assert reply["text"] == "We will chase it as soon as we can."
    assert flag_kinds(reply) == ["style.rewrite"]


def test_a_warned_phrase_passes_with_a_flag(as_client: APIClient, helper: Version) -> None:
    conversation = start(as_client)["id"]
    (reply,) = say(as_client, conversation, "thanks")["replies"]
    assert reply["text"] == "No worries, glad to help."
    assert flag_kinds(reply) == ["style.warn"]
    assert "no worries" in reply["flags"][0]["violations"][0].lower()


def test_a_persona_whose_own_texts_are_blocked_cannot_be_submitted(
    api_as: Callable[[User], APIClient], editor: User, guide: Version
) -> None:
    as_editor = api_as(editor)
    spec = {**PERSONA, "fallback": "Sorry, bananas."}
    assert (
        as_editor.post("/api/personas/", {"slug": "rude", "name": "Rude", "draft": spec}, format="json").status_code
        == 201
    )
    refused = as_editor.post("/api/personas/rude/submit/", {}, format="json")
    found = error(refused, 400)
    assert found["code"] == "checks_failed"
    assert any("fallback" in message and "bananas" in message for message in found["fields"]["checks.persona.style"])
    assert not Version.objects.filter(object__slug="rude").exists()


# --- guardrails at run time ---------------------------------------------------------------------------------------


def test_an_input_deny_policy_answers_with_its_message(
    as_client: APIClient, client_user: User, lifecycle: Lifecycle, helper: Version
) -> None:
    lifecycle.policy("no-forbidden", DENY_FORBIDDEN)
    conversation = start(as_client)["id"]
    turn = say(as_client, conversation, "tell me something forbidden")

    assert texts(turn) == ["I can't talk about that here."]
    assert turn["status"] == "active"
    (flag,) = turn["message"]["flags"]
    assert (flag["kind"], flag["policies"]) == ("guardrail.deny", ["no-forbidden v1"])
    (matched,) = events(conversation, "governance.guardrail.matched")
    assert (matched.actor_id, matched.details["checkpoint"], matched.details["effect"]) == (
        str(client_user.pk),
        "input",
        "deny",
    )
    # Like every event of the conversation, under its correlation id (not the request's).
    assert matched.correlation_id == Conversation.objects.get(pk=conversation).correlation_id
    assert texts(say(as_client, conversation, "repeat")) == ["What should I repeat?"]  # other text is allowed


def test_an_input_redact_policy_stores_the_email_redacted(
    as_client: APIClient, lifecycle: Lifecycle, helper: Version
) -> None:
    lifecycle.policy("redact-emails", REDACT_EMAILS)
    conversation = start(as_client)["id"]
    turn = say(as_client, conversation, f"my address is {EMAIL}")

    assert turn["message"]["text"] == "my address is [EMAIL]"
    assert flag_kinds(turn["message"]) == ["guardrail.redact"]
    assert EMAIL not in str(transcript(as_client, conversation))
    assert Message.objects.filter(conversation_id=conversation, text__contains=EMAIL).count() == 0


def test_an_output_escalate_policy_hands_the_conversation_over(
    as_client: APIClient, lifecycle: Lifecycle, helper: Version
) -> None:
    lifecycle.policy("chasing-needs-a-person", ESCALATE_CHASING)
    conversation = start(as_client)["id"]
    turn = say(as_client, conversation, "chase")

    assert turn["status"] == "escalated"
    (reply,) = turn["replies"]
    assert reply["text"] == HANDOVER
    assert flag_kinds(reply) == ["style.rewrite", "guardrail.escalate"]
    item = handover_item(conversation)
    assert item.status == ReviewStatus.PENDING
    assert "Chasing needs a person." in item.reason
    assert "Chasing needs a person." in Conversation.objects.get(pk=conversation).escalation_reason
    assert len(events(conversation, "persona.conversation.escalated")) == 1
    # Every event of the conversation, the guardrail's included, under its correlation id (not the requests').
    assert len(events(conversation, "governance.guardrail.matched")) == 1
    correlation_id = Conversation.objects.get(pk=conversation).correlation_id
    assert {event.correlation_id for event in events(conversation)} == {correlation_id}


def test_a_policy_released_after_the_start_does_not_apply_to_the_conversation(
    as_client: APIClient, lifecycle: Lifecycle, helper: Version
) -> None:
    before = start(as_client)["id"]
    lifecycle.policy("no-forbidden", DENY_FORBIDDEN)
    after = start(as_client)["id"]

    old_turn = say(as_client, before, "something forbidden")
    assert (texts(old_turn), old_turn["message"]["flags"]) == ([FALLBACK], [])
    new_turn = say(as_client, after, "something forbidden")
    assert (texts(new_turn), flag_kinds(new_turn["message"])) == (["I can't talk about that here."], ["guardrail.deny"])
    assert Conversation.objects.get(pk=before).policy_versions == []
    assert [(p["slug"], p["version"]) for p in Conversation.objects.get(pk=after).policy_versions] == [
        ("no-forbidden", 1)
    ]
    assert events(after, "persona.conversation.started")[0].details["policies"] == ["no-forbidden v1"]


# --- personal data ------------------------------------------------------------------------------------------------


def give_contact_details(client: APIClient, conversation: str) -> list[dict[str, Any]]:
    return [say(client, conversation, text) for text in ("contact", EMAIL, PHONE)]


def test_a_redacting_persona_stores_transcripts_without_personal_data(
    as_client: APIClient, private_helper: Version
) -> None:
    conversation = start(as_client, persona="private")["id"]
    _, email_turn, phone_turn = give_contact_details(as_client, conversation)

    assert (email_turn["message"]["text"], email_turn["message"]["flags"]) == (
        "[EMAIL]",
        [{"kind": "pii.redacted", "found": ["email"]}],
    )
    assert (phone_turn["message"]["text"], phone_turn["message"]["flags"]) == (
        "[PHONE]",
        [{"kind": "pii.redacted", "found": ["phone"]}],
    )
    (done,) = phone_turn["replies"]
    assert done["text"] == "We will write to [EMAIL] or call [PHONE]."
    assert done["flags"] == [{"kind": "pii.redacted", "found": ["email", "phone"]}]
    stored = transcript(as_client, conversation)
    assert EMAIL not in str(stored)
    assert PHONE not in str(stored)

    # The slots keep the values while the conversation runs; closing redacts them.
    assert Conversation.objects.get(pk=conversation).state["slots"] == {"email": EMAIL, "phone": PHONE}
    assert as_client.post(f"/api/conversations/{conversation}/close/", {}, format="json").status_code == 200
    assert Conversation.objects.get(pk=conversation).state["slots"] == {"email": "[EMAIL]", "phone": "[PHONE]"}


def test_a_keeping_persona_stores_what_was_written(as_client: APIClient, helper: Version) -> None:
    conversation = start(as_client)["id"]
    _, email_turn, phone_turn = give_contact_details(as_client, conversation)

    assert (email_turn["message"]["text"], email_turn["message"]["flags"]) == (EMAIL, [])
    assert (phone_turn["message"]["text"], phone_turn["message"]["flags"]) == (PHONE, [])
    assert texts(phone_turn) == [f"We will write to {EMAIL} or call {PHONE}."]
    assert as_client.post(f"/api/conversations/{conversation}/close/", {}, format="json").status_code == 200
    assert Conversation.objects.get(pk=conversation).state["slots"] == {"email": EMAIL, "phone": PHONE}


COMPLAINT = {
    "id": "complaint",
    "trigger": {"keywords": ["complaint"]},
    "steps": [
        {"id": "ask_details", "type": "ask", "slot": "details", "prompt": "What happened?"},
        {"id": "to_person", "type": "escalate", "reason": "Complaint: {{details}}"},
    ],
}


@pytest.mark.parametrize("pii", ["redact", "keep"])
def test_personal_data_in_an_escalation_reason_never_reaches_the_audit_trail(
    as_client: APIClient, lifecycle: Lifecycle, guide: Version, pii: str
) -> None:
    lifecycle.release(PERSONA_KIND, "complaints", {**PERSONA, "pii": pii, "flows": [COMPLAINT]}, name="Penny")
    conversation = start(as_client, persona="complaints")["id"]
    say(as_client, conversation, "complaint")
    assert say(as_client, conversation, f"you sent my data to {EMAIL}")["status"] == "escalated"

    (escalated,) = events(conversation, "persona.conversation.escalated")
    assert escalated.details == {"reason": "Complaint: you sent my data to [EMAIL]"}
    kept = f"Complaint: you sent my data to {EMAIL if pii == 'keep' else '[EMAIL]'}"
    item = handover_item(conversation)
    assert (item.reason, item.payload["reason"]) == (kept, kept)
    assert Conversation.objects.get(pk=conversation).escalation_reason == kept


def test_a_flow_that_ends_with_close_closes_the_conversation(
    as_client: APIClient, client_user: User, lifecycle: Lifecycle, guide: Version
) -> None:
    goodbye = {
        "id": "bye",
        "trigger": {"keywords": ["bye"]},
        "steps": [
            {"id": "ask_email", "type": "ask", "slot": "email", "slot_type": "email", "prompt": "E-mail?"},
            {"id": "end", "type": "end", "text": "Goodbye!", "close": True},
        ],
    }
    lifecycle.release(PERSONA_KIND, "private", {**PERSONA, "pii": "redact", "flows": [goodbye]}, name="Penny")
    conversation = start(as_client, persona="private")["id"]
    say(as_client, conversation, "bye")
    turn = say(as_client, conversation, EMAIL)

    assert (turn["status"], texts(turn)) == ("closed", ["Goodbye!"])
    stored = Conversation.objects.get(pk=conversation)
    assert stored.closed_at is not None
    assert stored.state["slots"] == {"email": "[EMAIL]"}
    (closed,) = events(conversation, "persona.conversation.closed")
    assert (closed.actor_id, closed.details["by"], closed.details["flow"]) == (str(client_user.pk), "flow", "bye")
    refused = as_client.post(f"/api/conversations/{conversation}/messages/", {"text": "hi"}, format="json")
    assert error(refused, 409)["code"] == "closed"


# --- hand-over to a person ----------------------------------------------------------------------------------------


def escalate(client: APIClient) -> str:
    conversation: str = start(client)["id"]
    turn = say(client, conversation, "can I talk to a person")
    assert (turn["status"], texts(turn)) == ("escalated", [HANDOVER])
    return conversation


def test_asking_for_a_person_hands_over_and_the_operator_hands_back(
    as_client: APIClient, client_user: User, operator: User, helper: Version
) -> None:
    conversation = escalate(as_client)
    item = handover_item(conversation)
    assert (item.status, item.subject_type, item.subject_id, item.requested_by) == (
        ReviewStatus.PENDING,
        "personas.conversation",
        conversation,
        client_user,
    )
    assert item.reason == "The user asked for a person."

    waiting = say(as_client, conversation, "hello? anyone there?")
    assert (waiting["status"], waiting["replies"]) == ("escalated", [])
    assert waiting["message"]["role"] == "user"

    conversation_reply(actor=operator, conversation=Conversation.objects.get(pk=conversation), text="Hi, I'm Otto.")
    last = transcript(as_client, conversation)["messages"][-1]
    assert (last["role"], last["text"], last["author"]) == ("operator", "Hi, I'm Otto.", operator.username)

    conversation_hand_back(actor=operator, conversation=Conversation.objects.get(pk=conversation), comment="sorted")
    item.refresh_from_db()
    assert item.status == ReviewStatus.RESOLVED
    (decision,) = ReviewDecision.objects.filter(item=item)
    assert (decision.decision, decision.decider, decision.comment) == (Decision.RESOLVE, operator, "sorted")
    stored = transcript(as_client, conversation)
    assert (stored["status"], stored["escalation_reason"]) == ("active", "")
    assert (stored["messages"][-1]["role"], stored["messages"][-1]["text"]) == ("persona", HANDED_BACK)
    assert texts(say(as_client, conversation, "repeat")) == ["What should I repeat?"]  # the persona answers again


def test_only_an_operator_answers_and_only_an_escalated_conversation(
    as_client: APIClient, operator: User, viewer: User, outsider: User, helper: Version
) -> None:
    active = start(as_client)["id"]
    with pytest.raises(Conflict) as refused:
        conversation_reply(actor=operator, conversation=Conversation.objects.get(pk=active), text="hello")
    assert refused.value.code == "not_escalated"
    with pytest.raises(Conflict):
        conversation_hand_back(actor=operator, conversation=Conversation.objects.get(pk=active))

    escalated = escalate(as_client)
    count = Message.objects.filter(conversation_id=escalated).count()
    for someone in (viewer, outsider):
        with pytest.raises(NotAllowed):
            conversation_reply(actor=someone, conversation=Conversation.objects.get(pk=escalated), text="hi")
        with pytest.raises(NotAllowed):
            conversation_hand_back(actor=someone, conversation=Conversation.objects.get(pk=escalated))
    assert Message.objects.filter(conversation_id=escalated).count() == count
    assert Conversation.objects.get(pk=escalated).status == ConversationStatus.ESCALATED
    assert handover_item(escalated).status == ReviewStatus.PENDING
    assert not events(escalated, "persona.conversation.operator_replied")


def test_a_handover_is_not_decided_through_the_review_endpoint(
    api_as: Callable[[User], APIClient], as_client: APIClient, approver: User, helper: Version
) -> None:
    item = handover_item(escalate(as_client))
    as_approver = api_as(approver)
    shown = as_approver.get(f"/api/reviews/{item.pk}/").json()
    assert shown["kind"] == "handover"
    for decision in ("approve", "reject"):
        response = as_approver.post(
            f"/api/reviews/{item.pk}/decide/", {"decision": decision, "digest": shown["digest"]}, format="json"
        )
        assert error(response, 409)["code"] == "handover"
    item.refresh_from_db()
    assert item.status == ReviewStatus.PENDING
    assert not item.decisions.exists()


def test_an_expired_handover_closes_the_conversation(as_client: APIClient, helper: Version) -> None:
    conversation = escalate(as_client)
    item = handover_item(conversation)
    assert review_items_expire() == 0  # not due yet
    ReviewItem.objects.filter(pk=item.pk).update(due_at=timezone.now() - dt.timedelta(minutes=1))

    assert review_items_expire() == 1
    item.refresh_from_db()
    assert item.status == ReviewStatus.EXPIRED
    stored = transcript(as_client, conversation)
    assert stored["status"] == "closed"
    assert stored["closed_at"] is not None
    assert stored["messages"][-1]["role"] == "system"
    assert "closed" in stored["messages"][-1]["text"]
    (closed,) = events(conversation, "persona.conversation.closed")
    assert (closed.actor_type, closed.actor_label, closed.details) == ("system", "review-expiry", {"by": "expiry"})
    refused = as_client.post(f"/api/conversations/{conversation}/messages/", {"text": "hello?"}, format="json")
    assert error(refused, 409)["code"] == "closed"


# --- closing ------------------------------------------------------------------------------------------------------


def test_the_client_closes_with_a_rating(as_client: APIClient, client_user: User, helper: Version) -> None:
    conversation = start(as_client)["id"]
    response = as_client.post(
        f"/api/conversations/{conversation}/close/", {"rating": 4, "comment": "ok"}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["rating"], body["comment"]) == ("closed", 4, "ok")
    assert body["closed_at"] is not None
    (closed,) = events(conversation, "persona.conversation.closed")
    assert (closed.actor_type, closed.actor_id, closed.details) == (
        "api_client",
        str(client_user.pk),
        {"by": "client", "rating": 4},
    )

    again = as_client.post(f"/api/conversations/{conversation}/close/", {}, format="json")
    assert error(again, 409)["code"] == "closed"
    refused = as_client.post(f"/api/conversations/{conversation}/messages/", {"text": "hello?"}, format="json")
    assert error(refused, 409)["code"] == "closed"
    assert Message.objects.filter(conversation_id=conversation).count() == 1
    assert len(events(conversation, "persona.conversation.closed")) == 1


@pytest.mark.parametrize("rating", [0, 6, "x", 4.5])
def test_a_rating_out_of_range_is_refused(as_client: APIClient, helper: Version, rating: Any) -> None:
    conversation = start(as_client)["id"]
    response = as_client.post(f"/api/conversations/{conversation}/close/", {"rating": rating}, format="json")
    assert list(error(response, 400)["fields"]) == ["rating"]
    assert Conversation.objects.get(pk=conversation).status == ConversationStatus.ACTIVE
    assert not events(conversation, "persona.conversation.closed")


def test_closing_an_escalated_conversation_withdraws_the_handover(as_client: APIClient, helper: Version) -> None:
    conversation = escalate(as_client)
    response = as_client.post(f"/api/conversations/{conversation}/close/", {"rating": 2}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "closed"
    item = handover_item(conversation)
    assert item.status == ReviewStatus.WITHDRAWN
    assert not item.decisions.exists()


def test_an_operator_closes_an_escalated_conversation_and_resolves_the_handover(
    as_client: APIClient, operator: User, viewer: User, helper: Version
) -> None:
    conversation = escalate(as_client)
    for actor, as_operator in ((viewer, True), (viewer, False), (operator, False)):
        with pytest.raises(NotAllowed):
            conversation_close(
                actor=actor, conversation=Conversation.objects.get(pk=conversation), as_operator=as_operator
            )
    assert handover_item(conversation).status == ReviewStatus.PENDING
    assert Conversation.objects.get(pk=conversation).status == ConversationStatus.ESCALATED

    conversation_close(
        actor=operator, conversation=Conversation.objects.get(pk=conversation), comment="done", as_operator=True
    )
    item = handover_item(conversation)
    assert item.status == ReviewStatus.RESOLVED
    assert [(d.decision, d.decider, d.comment) for d in item.decisions.all()] == [(Decision.RESOLVE, operator, "done")]
    stored = Conversation.objects.get(pk=conversation)
    assert (stored.status, stored.rating, stored.comment) == (ConversationStatus.CLOSED, None, "")
    (closed,) = events(conversation, "persona.conversation.closed")
    assert (closed.actor_label, closed.details) == (operator.username, {"by": "operator", "rating": None})


# --- isolation ----------------------------------------------------------------------------------------------------


def test_a_client_sees_only_its_own_conversations(
    api_as: Callable[[User], APIClient], as_client: APIClient, make_user: Callable[..., User], helper: Version
) -> None:
    mine = [start(as_client)["id"] for _ in range(2)]
    as_other = api_as(make_user("otis-other-client"))
    theirs = start(as_other)["id"]
    count, trail = Message.objects.filter(conversation_id=theirs).count(), AuditEvent.objects.count()

    assert error(as_client.get(f"/api/conversations/{theirs}/"), 404)["code"] == "not_found"
    refused = as_client.post(f"/api/conversations/{theirs}/messages/", {"text": "repeat"}, format="json")
    assert error(refused, 404)
    assert error(as_client.post(f"/api/conversations/{theirs}/close/", {}, format="json"), 404)
    assert Message.objects.filter(conversation_id=theirs).count() == count
    assert Conversation.objects.get(pk=theirs).status == ConversationStatus.ACTIVE
    assert AuditEvent.objects.count() == trail

    listed = as_client.get("/api/conversations/").json()
    assert listed["count"] == 2
    assert {row["id"] for row in listed["results"]} == set(mine)
    assert [row["id"] for row in as_other.get("/api/conversations/").json()["results"]] == [theirs]


@pytest.mark.parametrize("pk", ["not-a-uuid", "1", str(uuid.uuid4())])
def test_an_unknown_conversation_id_is_not_found(as_client: APIClient, helper: Version, pk: str) -> None:
    start(as_client)
    assert error(as_client.get(f"/api/conversations/{pk}/"), 404)["code"] == "not_found"
    assert error(as_client.post(f"/api/conversations/{pk}/messages/", {"text": "hi"}, format="json"), 404)
    assert error(as_client.post(f"/api/conversations/{pk}/close/", {}, format="json"), 404)


def test_the_list_costs_the_same_queries_however_many_conversations(as_client: APIClient, helper: Version) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert as_client.get("/api/conversations/").status_code == 200
        return len(captured)

    start(as_client)
    one = queries()
    for _ in range(4):
        start(as_client)
    assert queries() == one


# --- bad input on messages ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"text": ""},
        {"text": "   "},
        {"text": "x" * 4001},
        {"text": None},
        {"text": ["hi"]},
        {"text": {"a": 1}},
        {"text": True},
    ],
)
def test_a_bad_message_is_refused_and_nothing_is_written(
    as_client: APIClient, helper: Version, body: dict[str, Any]
) -> None:
    conversation = start(as_client)["id"]
    count, trail = Message.objects.count(), AuditEvent.objects.count()
    found = error(as_client.post(f"/api/conversations/{conversation}/messages/", body, format="json"), 400)
    assert list(found["fields"]) == ["text"]
    assert (Message.objects.count(), AuditEvent.objects.count()) == (count, trail)


def test_a_message_of_the_maximum_length_is_accepted(as_client: APIClient, helper: Version) -> None:
    conversation = start(as_client)["id"]
    assert texts(say(as_client, conversation, "x" * 4000)) == [FALLBACK]


# --- the audit trail of a whole conversation ----------------------------------------------------------------------


def test_every_step_of_a_conversation_is_audited_in_order(
    as_client: APIClient, client_user: User, operator: User, helper: Version
) -> None:
    conversation = start(as_client)["id"]
    say(as_client, conversation, "repeat")
    say(as_client, conversation, "can I talk to a person")
    say(as_client, conversation, "hello?")
    conversation_reply(actor=operator, conversation=Conversation.objects.get(pk=conversation), text="Otto here.")
    conversation_hand_back(actor=operator, conversation=Conversation.objects.get(pk=conversation))
    say(as_client, conversation, "thanks")
    assert as_client.post(f"/api/conversations/{conversation}/close/", {"rating": 5}, format="json").status_code == 200

    client = ("api_client", str(client_user.pk), client_user.username)
    person = ("user", str(operator.pk), operator.username)
    assert [(e.action, (e.actor_type, e.actor_id, e.actor_label)) for e in events(conversation)] == [
        ("persona.conversation.started", client),
        ("persona.conversation.turn", client),
        ("persona.conversation.escalated", client),
        ("persona.conversation.turn", client),
        ("persona.conversation.turn", client),
        ("persona.conversation.operator_replied", person),
        ("persona.conversation.handed_back", person),
        ("persona.conversation.turn", client),
        ("persona.conversation.closed", client),
    ]
    turns = [e.details for e in events(conversation, "persona.conversation.turn")]
    assert [(t["intent"], t["flow"], t["status"]) for t in turns] == [
        ("", "repeat", "active"),
        ("person", "repeat", "escalated"),  # asked for a person while in the flow
        ("", "", "escalated"),
        ("", "thanks", "active"),
    ]
    assert turns[-1]["flags"] == ["style.warn"]
    seqs = [m.seq for m in Message.objects.filter(conversation_id=conversation).order_by("seq")]
    assert seqs == list(range(1, 11))
    assert audit_chain_verify(actor=Actor.system("tests")).ok


# --- the governed persona API -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "path", "message"),
    [
        (
            [
                {"id": "ask_thing", "type": "ask", "slot": "thing", "prompt": "What?"},
                {"id": "said", "type": "say", "text": "You said: {{thing}}", "next": "nowhere"},
            ],
            "draft.flows[0].steps[1].next",
            "flow 'repeat', step 'said': there is no step 'nowhere' in the flow",
        ),
        (
            [
                {"id": "ask_thing", "type": "ask", "slot": "thing", "prompt": "What?"},
                {"id": "said", "type": "say", "text": "You said: {{other}}"},
            ],
            "draft.flows[0].steps[1].text",
            "flow 'repeat', step 'said': the template names slots the flow never fills: other",
        ),
        (
            [{"id": "ask_thing", "type": "ask", "slot": "thing"}],
            "draft.flows[0].steps[0]",
            "flow 'repeat', step 'ask_thing': 'prompt' is a required property",
        ),
    ],
)
def test_submitting_an_invalid_persona_names_the_flow_and_step(
    api_as: Callable[[User], APIClient], editor: User, steps: list[dict[str, Any]], path: str, message: str
) -> None:
    as_editor = api_as(editor)
    flow = {"id": "repeat", "trigger": {"keywords": ["repeat"]}, "steps": steps}
    draft = {**{key: value for key, value in PERSONA.items() if key != "style_guide"}, "flows": [flow]}
    created = as_editor.post("/api/personas/", {"slug": "broken", "name": "Broken", "draft": draft}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["draft"] == draft

    found = error(as_editor.post("/api/personas/broken/submit/", {}, format="json"), 400)
    assert found["code"] == "invalid_spec"
    assert found["fields"] == {path: [message]}
    assert not Version.objects.filter(object__slug="broken").exists()


def test_persona_name_is_filled_in_every_text_from_the_spec(
    as_client: APIClient, lifecycle: Lifecycle, guide: Version, operator: User
) -> None:
    named = {
        **PERSONA,
        "handover": "{{persona_name}} passes you on.",
        "messages": {"handed_back": "{{persona_name}} is back.", "denied": "{{persona_name}} can't."},
        "flows": [
            {
                "id": "work",
                "trigger": {"keywords": ["work"]},
                "steps": [{"id": "go", "type": "handoff", "agent": "worker"}],
            }
        ],
    }
    lifecycle.release(PERSONA_KIND, "named", named, name="Penny")
    lifecycle.policy("no-forbidden", {**DENY_FORBIDDEN, "message": ""})
    conversation = start(as_client, persona="named")["id"]
    assert texts(say(as_client, conversation, "forbidden")) == ["Penny can't."]
    assert texts(say(as_client, conversation, "work")) == ["Penny passes you on."]
    conversation_hand_back(actor=operator, conversation=Conversation.objects.get(pk=conversation))
    assert transcript(as_client, conversation)["messages"][-1]["text"] == "Penny is back."


def test_input_guardrails_apply_while_a_person_has_the_conversation(
    as_client: APIClient, lifecycle: Lifecycle, helper: Version
) -> None:
    lifecycle.policy("redact-emails", REDACT_EMAILS)
    conversation = escalate(as_client)
    turn = say(as_client, conversation, f"mail me at {EMAIL}")
    assert (turn["status"], turn["replies"]) == ("escalated", [])
    assert turn["message"]["text"] == "mail me at [EMAIL]"
    assert flag_kinds(turn["message"]) == ["guardrail.redact"]


def test_an_unknown_label_is_a_field_error(as_client: APIClient, helper: Version) -> None:
    response = as_client.post("/api/conversations/", {"persona": "helper", "label": "nowhere"}, format="json")
    body = error(response, 400)
    assert "label" in body["fields"]
    assert not Conversation.objects.exists()
