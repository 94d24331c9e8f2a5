"""A persona in front, an agent behind, with a real Celery worker: a flow's hand-off starts the agent's run, the
conversation waits on it, and the persona relays the result in its own voice or hands the conversation to a person.
Messages written meanwhile follow the persona's ``while_working`` policy: queue, reject or interrupt."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from agents.models import Run, RunStatus
from audit.models import AuditEvent
from demo.models import DemoReplenishment, DemoStock
from governance.demo import released
from governance.models import ReviewItem, ReviewKind, ReviewStatus
from personas.models import Conversation
from tests.support import tools_release, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.usefixtures("celery_worker")]

RESTOCKER: dict[str, Any] = {
    "instructions": "Restock what is asked.",
    "model": {"provider": "scripted", "name": "restock"},
    "autonomy": "supervised",
    "budgets": {"steps": 10},
    "grants": [{"tool": "inventory.place_replenishment", "approval": {"when": "args.quantity > 100"}}],
    "script": [
        {"call": "inventory.place_replenishment", "arguments": {"sku": "input.sku", "quantity": "input.quantity"}},
        {"when": "has(last.error)", "answer": "not ordered: {{ last.error }}"},
        {"answer": "order {{ last.order_id }} for {{ last.quantity }}"},
    ],
}


def persona(policy: str) -> dict[str, Any]:
    return {
        "greeting": "Hi, I can restock or tell you our hours.",
        "fallback": "Sorry, I can restock or tell you our hours.",
        "handover": "A colleague will take over.",
        "while_working": policy,
        "messages": {"busy": "Still on it, one moment."},
        "flows": [
            {
                "id": "restock",
                "trigger": {"keywords": ["restock"]},
                "steps": [
                    {"id": "sku", "type": "ask", "slot": "sku", "prompt": "Which SKU?"},
                    {
                        "id": "qty",
                        "type": "ask",
                        "slot": "quantity",
                        "slot_type": "number",
                        "prompt": "How many?",
                        "validation": {"integer": True, "min": 1},
                    },
                    {
                        "id": "go",
                        "type": "handoff",
                        "agent": "restocker",
                        "text": "On it.",
                        "input": {"sku": "{{sku}}", "quantity": "{{quantity}}"},
                        "reply": "Done: {{result.answer}}.",
                    },
                ],
            },
            {
                "id": "hours",
                "trigger": {"keywords": ["hours"]},
                "steps": [{"id": "tell", "type": "end", "text": "We open at nine."}],
            },
        ],
    }


@pytest.fixture
def hybrid(
    transactional_db: None, editor: User, approver: User, make_user: Callable[..., User]
) -> Callable[[str], APIClient]:
    """``hybrid(policy)``: the restocking agent and a persona with that policy released; a client for it."""
    tools_release(approver)
    DemoStock.objects.create(sku="SKU-1", on_hand=0, reorder_point=10)
    released(editor, [approver], "agent", "restocker", "Restocker", RESTOCKER)

    def setup(policy: str) -> APIClient:
        released(editor, [approver], "persona", "front", "Frida", persona(policy))
        client = APIClient()
        client.force_authenticate(make_user("shop-client"))
        return client

    return setup


def say(client: APIClient, conversation: str, text: str) -> dict[str, Any]:
    response = client.post(f"/api/conversations/{conversation}/messages/", {"text": text}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def texts(turn: dict[str, Any]) -> list[str]:
    return [reply["text"] for reply in turn["replies"]]


def hand_off(client: APIClient, quantity: int) -> tuple[str, Run]:
    conversation: str = client.post("/api/conversations/", {"persona": "front"}, format="json").json()["id"]
    say(client, conversation, "restock please")
    say(client, conversation, "SKU-1")
    turn = say(client, conversation, str(quantity))
    assert (turn["status"], texts(turn)) == ("waiting_on_agent", ["On it."])
    run = Conversation.objects.get(pk=conversation).run
    assert run is not None
    return conversation, run


def settled(conversation: str, status: str = "active") -> Conversation:
    return wait_for(
        lambda: Conversation.objects.filter(pk=conversation, status=status).first(),
        message=f"conversation {conversation} to be {status}",
    )


def parked(run: Run) -> ReviewItem:
    wait_for(lambda: Run.objects.get(pk=run.pk).status == RunStatus.AWAITING_APPROVAL, message="the run to park")
    return ReviewItem.objects.get(kind=ReviewKind.TOOL_APPROVAL, status=ReviewStatus.PENDING)


def approve(item: ReviewItem, approver: User) -> None:
    client = APIClient()
    client.force_authenticate(approver)
    decided = client.post(
        f"/api/approvals/{item.pk}/decide/", {"decision": "approve", "digest": item.digest}, format="json"
    )
    assert decided.status_code == 200, decided.json()


def test_the_agent_works_and_the_persona_relays_its_result(hybrid: Callable[[str], APIClient]) -> None:
    client = hybrid("queue")
    conversation, run = hand_off(client, 5)
    done = settled(conversation)
    last = done.messages.order_by("seq").last()
    assert last is not None
    assert last.text == f"Done: order {DemoReplenishment.objects.get().pk} for 5."
    assert (last.flow, last.step) == ("restock", "go")
    run.refresh_from_db()
    assert (run.status, run.origin, run.input) == (
        RunStatus.SUCCEEDED,
        f"personas.conversation:{conversation}",
        {"sku": "SKU-1", "quantity": 5},
    )
    # One correlation id ties the conversation and its run together in the audit trail.
    assert run.correlation_id == done.correlation_id
    actions = set(AuditEvent.objects.filter(correlation_id=done.correlation_id).values_list("action", flat=True))
    assert {
        "persona.conversation.handed_off",
        "agent.run.started",
        "agent.tool.succeeded",
        "agent.run.succeeded",
        "persona.conversation.agent_answered",
    } <= actions
    # They link to each other in the API: the run is the client's own (started on its behalf).
    seen = client.get(f"/api/conversations/{conversation}/").json()
    assert (seen["status"], seen["run"]) == ("active", str(run.pk))
    assert client.get(f"/api/runs/{run.pk}/").json()["origin"] == f"personas.conversation:{conversation}"


def test_queue_answers_what_was_written_meanwhile_after_the_agent(
    hybrid: Callable[[str], APIClient], approver: User
) -> None:
    client = hybrid("queue")
    conversation, run = hand_off(client, 500)  # above 100: waits for an approver
    item = parked(run)
    turn = say(client, conversation, "and your hours?")
    assert (turn["status"], turn["replies"]) == ("waiting_on_agent", [])
    assert [flag["kind"] for flag in turn["message"]["flags"]] == ["queued"]
    approve(item, approver)
    done = settled(conversation)
    order = DemoReplenishment.objects.get()
    assert order.quantity == 500
    assert [m.text for m in done.messages.order_by("seq")][-2:] == [
        f"Done: order {order.pk} for 500.",
        "We open at nine.",
    ]


def test_reject_tells_the_user_to_wait(hybrid: Callable[[str], APIClient], approver: User) -> None:
    client = hybrid("reject")
    conversation, run = hand_off(client, 500)
    item = parked(run)
    turn = say(client, conversation, "hello?")
    assert (turn["status"], texts(turn)) == ("waiting_on_agent", ["Still on it, one moment."])
    approve(item, approver)
    done = settled(conversation)
    texts_after = [m.text for m in done.messages.order_by("seq")]
    assert texts_after[-1] == f"Done: order {DemoReplenishment.objects.get().pk} for 500."
    assert "We open at nine." not in texts_after


def test_interrupt_cancels_the_run_and_handles_the_new_message(hybrid: Callable[[str], APIClient]) -> None:
    client = hybrid("interrupt")
    conversation, run = hand_off(client, 500)
    item = parked(run)
    turn = say(client, conversation, "forget it, what are your hours?")
    assert (turn["status"], texts(turn)) == ("active", ["We open at nine."])
    assert [flag["kind"] for flag in turn["message"]["flags"]] == ["interrupted"]
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    item.refresh_from_db()
    assert item.status == ReviewStatus.WITHDRAWN
    assert not DemoReplenishment.objects.exists()
    assert Conversation.objects.get(pk=conversation).status == "active"  # not handed to a person


def test_a_run_that_does_not_succeed_hands_the_conversation_to_a_person(
    hybrid: Callable[[str], APIClient], operator: User
) -> None:
    client = hybrid("queue")
    conversation, run = hand_off(client, 500)
    parked(run)
    cancel = APIClient()
    cancel.force_authenticate(operator)
    assert cancel.post(f"/api/runs/{run.pk}/cancel/", {"reason": "supplier closed"}, format="json").status_code == 200
    done = settled(conversation, "escalated")
    assert done.messages.order_by("seq").last().text == "A colleague will take over."  # type: ignore[union-attr]
    assert "cancelled" in done.escalation_reason
    assert "supplier closed" in done.escalation_reason
    handover = ReviewItem.objects.get(kind=ReviewKind.HANDOVER)
    assert handover.subject_id == conversation


def test_an_agent_that_is_not_released_hands_over_at_once(
    transactional_db: None, editor: User, approver: User, make_user: Callable[..., User]
) -> None:
    released(editor, [approver], "persona", "front", "Frida", persona("queue"))
    client = APIClient()
    client.force_authenticate(make_user("shop-client"))
    conversation = client.post("/api/conversations/", {"persona": "front"}, format="json").json()["id"]
    say(client, conversation, "restock")
    say(client, conversation, "SKU-1")
    turn = say(client, conversation, "3")
    assert (turn["status"], texts(turn)) == ("escalated", ["On it.", "A colleague will take over."])
    reason = Conversation.objects.get(pk=conversation).escalation_reason
    assert "could not hand off to the agent 'restocker'" in reason
    assert "There is no agent 'restocker'" in reason
