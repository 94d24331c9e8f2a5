"""A persona's optional LLM phrasing, against a real Chat Completions server on loopback: what the model writes
is sent (judged by the style guide and the ``output`` guardrails like everything else); on any error, a timeout, or
a phrasing the style guide blocks or the guardrails do not allow, the scripted text is sent instead, and the message
says why. The trail records the turn as decided and then what was phrased. (That the model is asked with no
transaction open: ``test_phrasing_commit``.)"""

from typing import Any

import pytest
from django.contrib.auth.models import User

from config.errors import DomainError
from governance import services as governance
from personas import services
from personas.models import Conversation
from tests.chat_server import ModelServer, Reply, completion
from tests.personas.test_conversations import Lifecycle, events, lifecycle

pytestmark = pytest.mark.django_db

__all__ = ["lifecycle"]  # a fixture of test_conversations.py: releases guardrail policies past their two approvers

KEY_VARIABLE = "TEST_PHRASING_KEY"
GUIDE = {"banned": [{"phrase": "cheap"}], "examples": [{"text": "A fair price.", "compliant": True}]}


def release(editor: User, approver: User, kind: str, slug: str, spec: dict[str, Any]) -> None:
    obj = governance.governed_object_create(actor=editor, kind=kind, slug=slug, name=slug.title(), draft=spec)
    version = governance.version_submit(actor=editor, obj=obj)
    item = version.reviews.get()
    governance.review_decide(actor=approver, item=item, decision="approve", digest=item.digest)
    governance.release_create(actor=approver, note="test", moves=[governance.Move(obj, "production", version)])


@pytest.fixture
def phrasing_persona(
    editor: User, approver: User, chat: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    monkeypatch.setenv(KEY_VARIABLE, "sk-loopback")
    release(editor, approver, "style_guide", "plain", GUIDE)
    spec = {
        "tone": "Cheerful and short.",
        "greeting": "Hello, I can tell you our opening hours.",
        "fallback": "Sorry, I only know our opening hours.",
        "handover": "A colleague will help you.",
        "style_guide": {"slug": "plain", "version": 1},
        "llm_phrasing": {
            "enabled": True,
            "provider": "openai",
            "model": "phraser",
            "base_url": chat.base_url,
            "api_key_env": KEY_VARIABLE,
            "timeout_seconds": 0.5,
            "instructions": "Use British English.",
        },
        "flows": [
            {
                "id": "hours",
                "trigger": {"keywords": ["hours"]},
                "steps": [{"id": "tell", "type": "end", "text": "We are open 9 to 5."}],
            }
        ],
    }
    release(editor, approver, "persona", "hal", spec)
    return spec


def test_the_model_phrases_each_text_and_is_told_the_tone(
    chat: ModelServer, phrasing_persona: dict[str, Any], outsider: User
) -> None:
    chat.replies = [completion("Hi there! Ask me about our opening hours."), completion("We're open from 9 till 5.")]
    conversation = services.conversation_start(client=outsider, persona="hal")
    _, reply = services.conversation_message(client=outsider, conversation=conversation, text="hours?").messages

    greeting = conversation.messages.get(seq=1)
    assert greeting.text == "Hi there! Ask me about our opening hours."
    assert greeting.flags == [{"kind": "phrasing.model", "model": "openai phraser"}]
    assert reply.text == "We're open from 9 till 5."
    request = chat.requests[1].body
    assert request["model"] == "phraser"
    assert request["messages"][1] == {"role": "user", "content": "We are open 9 to 5."}
    assert "Cheerful and short." in request["messages"][0]["content"]
    assert "Use British English." in request["messages"][0]["content"]
    assert chat.requests[1].headers["authorization"] == "Bearer sk-loopback"


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(500, {"error": {"message": "down", "type": "server_error"}}), "InternalServerError"),
        (Reply(body=completion("late").body, delay=2.0), "APITimeoutError"),
        (completion("   "), "the model answered nothing"),
        (completion("A cheap answer."), "the style guide blocks it"),
    ],
)
def test_on_any_failure_the_scripted_text_is_sent_and_the_reason_kept(
    chat: ModelServer, phrasing_persona: dict[str, Any], outsider: User, reply: Reply, reason: str
) -> None:
    chat.replies = [completion("Hello!"), reply]
    conversation = services.conversation_start(client=outsider, persona="hal")
    _, answer = services.conversation_message(client=outsider, conversation=conversation, text="hours?").messages
    assert answer.text == "We are open 9 to 5."
    (flag,) = answer.flags
    assert flag["kind"] == "phrasing.fallback"
    assert reason in flag["reason"]
    assert Conversation.objects.get(pk=conversation.pk).status == "active"


@pytest.mark.parametrize("effect", ["deny", "escalate"])
def test_a_phrasing_the_output_guardrails_do_not_allow_is_not_sent(
    chat: ModelServer, phrasing_persona: dict[str, Any], lifecycle: Lifecycle, outsider: User, effect: str
) -> None:
    policy = {
        "checkpoint": "output",
        "condition": 'text.contains("promise")',
        "effect": effect,
        "severity": "high",
        "message": "No promises.",
    }
    lifecycle.policy("no-promises", policy)
    chat.replies = [completion("Hello!"), completion("We promise to be open 9 to 5.")]
    conversation = services.conversation_start(client=outsider, persona="hal")
    answer = services.conversation_message(client=outsider, conversation=conversation, text="hours?")

    _, reply = answer.messages
    assert reply.text == "We are open 9 to 5."
    (flag,) = reply.flags
    assert (flag["kind"], flag["reason"], flag["policies"]) == (
        "phrasing.fallback",
        f"the output guardrails decided {effect}",
        ["no-promises v1"],
    )
    assert answer.status == Conversation.objects.get(pk=conversation.pk).status == "active"  # the scripted text passed
    (matched,) = events(str(conversation.pk), "governance.guardrail.matched")
    assert (matched.details["checkpoint"], matched.details["effect"]) == ("output", effect)


def test_a_text_the_output_guardrails_replaced_is_not_given_to_the_model(
    chat: ModelServer, phrasing_persona: dict[str, Any], lifecycle: Lifecycle, outsider: User
) -> None:
    policy = {"checkpoint": "output", "condition": 'text.contains("9 to 5")', "effect": "deny", "severity": "high"}
    lifecycle.policy("no-hours", policy)
    chat.replies = [completion("Hello!")]
    conversation = services.conversation_start(client=outsider, persona="hal")
    _, reply = services.conversation_message(client=outsider, conversation=conversation, text="hours?").messages

    assert reply.text == phrasing_persona["fallback"]
    assert [flag["kind"] for flag in reply.flags] == ["guardrail.deny"]
    assert len(chat.requests) == 1  # the greeting's phrasing only


def test_the_trail_records_the_turn_as_decided_then_what_was_phrased(
    chat: ModelServer, phrasing_persona: dict[str, Any], outsider: User
) -> None:
    chat.replies = [completion("Hello!"), Reply(500, {"error": {"message": "down", "type": "server_error"}})]
    conversation = services.conversation_start(client=outsider, persona="hal")
    services.conversation_message(client=outsider, conversation=conversation, text="hours?")

    (turn,) = events(str(conversation.pk), "persona.conversation.turn")
    assert turn.details["flags"] == ["phrasing.pending"]
    phrased = events(str(conversation.pk), "persona.conversation.phrased")
    assert [event.details for event in phrased] == [
        {"model": "openai phraser", "phrased": [1], "fallback": []},
        {"model": "openai phraser", "phrased": [], "fallback": [3]},
    ]
    assert phrased[1].sequence > turn.sequence


def test_a_replayed_message_is_answered_as_phrased_and_the_model_is_not_asked_again(
    chat: ModelServer, phrasing_persona: dict[str, Any], outsider: User
) -> None:
    chat.replies = [completion("Hello!"), completion("We're open from 9 till 5.")]
    conversation = services.conversation_start(client=outsider, persona="hal")
    first = services.conversation_message(
        client=outsider, conversation=conversation, text="hours?", idempotency_key="k"
    )
    again = services.conversation_message(
        client=outsider, conversation=conversation, text="hours?", idempotency_key="k"
    )

    assert again.replayed
    assert [(m.seq, m.text, m.flags) for m in again.messages] == [(m.seq, m.text, m.flags) for m in first.messages]
    assert again.messages[1].text == "We're open from 9 till 5."
    assert len(chat.requests) == 2


def test_phrasing_needs_a_provider_and_a_model(editor: User) -> None:
    spec = {
        "greeting": "Hi.",
        "fallback": "Sorry?",
        "handover": "Over.",
        "flows": [],
        "llm_phrasing": {"enabled": True},
    }
    obj = governance.governed_object_create(actor=editor, kind="persona", slug="p", name="P", draft=spec)
    with pytest.raises(DomainError) as refused:
        governance.version_submit(actor=editor, obj=obj)
    assert set(refused.value.fields) == {"draft.llm_phrasing.provider", "draft.llm_phrasing.model"}
