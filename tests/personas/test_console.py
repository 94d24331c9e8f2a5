"""Personas and conversations in the console: the validation panel, transcripts, and an Operator's hand-over work."""

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from governance import services as governance
from governance.models import GovernedObject, ReviewDecision, ReviewItem, ReviewKind, ReviewStatus
from governance.roles import Role
from personas import services
from personas.models import Conversation, ConversationStatus
from personas.models import Role as MessageRole

pytestmark = pytest.mark.django_db

PERSONA: dict[str, Any] = {
    "greeting": "Hello! Ask me about opening hours.",
    "fallback": "Sorry, I only know our opening hours.",
    "handover": "A colleague will take over here.",
    "pii": "redact",
    "flows": [
        {
            "id": "hours",
            "trigger": {"keywords": ["hours", "open"]},
            "steps": [{"id": "tell", "type": "say", "text": "We're open 9 to 5, Monday to Friday."}],
        }
    ],
}


@pytest.fixture
def persona(editor: User, approver: User) -> GovernedObject:
    obj = governance.governed_object_create(actor=editor, kind="persona", slug="hours", name="Hal", draft=PERSONA)
    version = governance.version_submit(actor=editor, obj=obj)
    item = version.reviews.get()
    governance.review_decide(actor=approver, item=item, decision="approve", digest=item.digest)
    governance.release_create(actor=approver, note="first", moves=[governance.Move(obj, "production", version)])
    return obj


@pytest.fixture
def escalated(persona: GovernedObject, outsider: User) -> Conversation:
    conversation = services.conversation_start(client=outsider, persona="hours")
    services.conversation_message(client=outsider, conversation=conversation, text="Can I talk to a human? me@ex.com")
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.ESCALATED
    return conversation


def _page(conversation: Conversation) -> str:
    return reverse("admin:personas_conversation_change", args=[conversation.pk])


def test_the_persona_page_shows_what_submitting_the_draft_would_say(client: Client, editor: User) -> None:
    broken = {
        **PERSONA,
        "flows": [
            {
                **PERSONA["flows"][0],
                "steps": [{"id": "tell", "type": "say", "next": "nowhere", "text": "Open {{day}}."}],
            }
        ],
    }
    obj = governance.governed_object_create(actor=editor, kind="persona", slug="bad", name="Bad", draft=broken)
    client.force_login(editor)
    page = client.get(reverse("admin:personas_persona_change", args=[obj.pk])).content.decode()
    assert "The draft would be refused on submit" in page
    assert "flows[0].steps[0].next" in page
    assert "flow &#x27;hours&#x27;, step &#x27;tell&#x27;: there is no step &#x27;nowhere&#x27; in the flow" in page
    assert "the template names slots the flow never fills: day" in page

    client.post(reverse("admin:personas_persona_change", args=[obj.pk]), {"name": "Bad", "draft": json.dumps(PERSONA)})
    page = client.get(reverse("admin:personas_persona_change", args=[obj.pk])).content.decode()
    assert "The draft is valid." in page
    assert "no style guide: the persona&#x27;s words are not checked" in page


def test_an_operator_answers_hands_back_and_it_is_all_audited(
    client: Client, escalated: Conversation, operator: User, outsider: User
) -> None:
    client.force_login(operator)
    page = client.get(_page(escalated)).content.decode()
    assert "Answer as an operator" in page
    assert "The user asked for a person." in page
    assert "[EMAIL]" in page  # the transcript as stored: redacted
    assert "me@ex.com" not in page

    assert client.post(_page(escalated), {"text": "Hi, this is support.", "_reply": "1"}).status_code == 302
    assert client.post(_page(escalated), {"text": "answered", "_hand_back": "1"}).status_code == 302

    escalated.refresh_from_db()
    assert escalated.status == ConversationStatus.ACTIVE
    roles_and_texts = [(m.role, m.text, m.author) for m in escalated.messages.all()][-2:]
    assert roles_and_texts == [
        (MessageRole.OPERATOR, "Hi, this is support.", operator),
        (MessageRole.PERSONA, "I'm back. What else can I do for you?", None),
    ]
    item = ReviewItem.objects.get(kind=ReviewKind.HANDOVER, subject_id=str(escalated.pk))
    assert item.status == ReviewStatus.RESOLVED
    decision = ReviewDecision.objects.get(item=item)
    assert (decision.decider, decision.decision, decision.comment) == (operator, "resolve", "answered")
    assert list(
        AuditEvent.objects.filter(target_id=str(escalated.pk)).order_by("sequence").values_list("action", "actor_label")
    )[-2:] == [
        ("persona.conversation.operator_replied", operator.username),
        ("persona.conversation.handed_back", operator.username),
    ]
    # Back with the persona: the user is answered by it again.
    replies = services.conversation_message(client=outsider, conversation=escalated, text="When are you open?").messages
    assert replies[-1].text == "We're open 9 to 5, Monday to Friday."


def test_an_operator_closes_from_the_console(client: Client, escalated: Conversation, operator: User) -> None:
    client.force_login(operator)
    assert client.post(_page(escalated), {"text": "", "_close": "1"}).status_code == 302
    escalated.refresh_from_db()
    assert escalated.status == ConversationStatus.CLOSED
    assert ReviewItem.objects.get(subject_id=str(escalated.pk)).status == ReviewStatus.RESOLVED
    closed = AuditEvent.objects.get(action="persona.conversation.closed", target_id=str(escalated.pk))
    assert (closed.details["by"], closed.actor_label) == ("operator", operator.username)
    page = client.get(_page(escalated)).content.decode()
    assert "Answer as an operator" not in page


@pytest.mark.parametrize("role", [Role.VIEWER, Role.APPROVER, Role.EDITOR])
def test_roles_without_the_reply_permission_see_no_reply_box_and_a_forced_post_changes_nothing(
    client: Client, escalated: Conversation, make_user, role: Role
) -> None:
    user = make_user(f"someone-{role.value.lower()}", role)
    client.force_login(user)
    page = client.get(_page(escalated))
    assert page.status_code == 200
    assert b"Answer as an operator" not in page.content
    count = escalated.messages.count()
    client.post(_page(escalated), {"text": "sneaky", "_reply": "1"})
    client.post(_page(escalated), {"text": "", "_hand_back": "1"})
    escalated.refresh_from_db()
    assert escalated.messages.count() == count
    assert escalated.status == ConversationStatus.ESCALATED


def test_an_empty_reply_is_refused_and_said(client: Client, escalated: Conversation, operator: User) -> None:
    client.force_login(operator)
    count = escalated.messages.count()
    response = client.post(_page(escalated), {"text": "  ", "_reply": "1"}, follow=True)
    assert "Write a reply." in response.content.decode()
    assert escalated.messages.count() == count


def test_the_hand_over_in_the_review_queue_links_to_the_conversation(
    client: Client, escalated: Conversation, admin: User
) -> None:
    item = ReviewItem.objects.get(kind=ReviewKind.HANDOVER)
    client.force_login(admin)
    page = client.get(reverse("admin:governance_reviewitem_change", args=[item.pk])).content.decode()
    assert _page(escalated) in page
    assert 'name="_approve"' not in page  # a hand-over is answered in the conversation, not approved


def test_the_conversation_list_filters_by_status(client: Client, escalated: Conversation, viewer: User) -> None:
    client.force_login(viewer)
    listing = client.get(reverse("admin:personas_conversation_changelist"), {"status__exact": "escalated"})
    assert listing.status_code == 200
    assert str(escalated.pk)[:8] in listing.content.decode()
    listing = client.get(reverse("admin:personas_conversation_changelist"), {"status__exact": "closed"})
    assert str(escalated.pk)[:8] not in listing.content.decode()
