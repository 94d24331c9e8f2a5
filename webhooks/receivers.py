"""What each signal of agents, governance and personas sends, and to whom.

An endpoint hears about what its owner may see: the runs they requested (``run.finished``) and the tool approvals
of those runs; the conversations they are the client of (``conversation.escalated``,
``conversation.operator_message``). Whoever may decide review items (Approvers, Admins) also hears about every tool
approval (``approval.requested``, ``approval.decided``; an expiry is a decision: expiry denies). Each receiver runs
inside the transaction that sent the signal, so the deliveries commit (and are sent) with the change, or not at all;
``run_finished``'s receiver reads the endpoints as the run's end is decided and returns the deliveries to write with
it (``agents.signals``).
"""

from collections.abc import Callable
from functools import partial
from typing import Any

from agents.models import Run, Step
from agents.services import RUN_APPROVALS
from agents.signals import run_finished
from governance.models import ReviewItem, ReviewKind
from governance.signals import review_item_decided, review_item_expired, review_item_opened
from personas.models import Conversation, ConversationStatus, Message
from personas.signals import operator_replied
from webhooks import selectors, services
from webhooks.models import WebhookEvent

STEP_SUBJECT = Step._meta.label_lower
CONVERSATION_SUBJECT = Conversation._meta.label_lower


def connect() -> None:
    run_finished.connect(_run_finished, dispatch_uid="webhooks.run_finished")
    review_item_opened.connect(_review_item_opened, dispatch_uid="webhooks.review_item_opened")
    review_item_decided.connect(_review_item_settled, dispatch_uid="webhooks.review_item_decided")
    review_item_expired.connect(_review_item_settled, dispatch_uid="webhooks.review_item_expired")
    operator_replied.connect(_operator_replied, dispatch_uid="webhooks.operator_replied")


def _send(event: str, data: dict[str, Any], **recipients: Any) -> None:
    endpoints = selectors.endpoints_for(event, **recipients)
    if endpoints:
        services.delivery_enqueue(event=event, data=data, endpoints=endpoints)


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _run_finished(sender: Any, run: Run, **kwargs: Any) -> Callable[[], Any] | None:
    """Read before the run's end is written (``agents.signals``): its deliveries, written with it, if any endpoint
    hears of it."""
    data = {
        "run": {
            "id": str(run.pk),
            "agent": run.agent.slug,
            "status": run.status,
            "result": run.result,
            "error": run.error,
            "origin": run.origin,
            "finished_at": _time(run.finished_at),
        }
    }
    endpoints = selectors.endpoints_for(WebhookEvent.RUN_FINISHED, owners=[run.requested_by_id])
    if not endpoints:
        return None
    return partial(services.delivery_enqueue, event=WebhookEvent.RUN_FINISHED, data=data, endpoints=endpoints)


def _approval(item: ReviewItem, event: str) -> None:
    if item.subject_type != STEP_SUBJECT:
        return
    found = Step.objects.filter(pk=item.subject_id).values_list("run_id", "run__requested_by_id").first()
    run_id, requester = found or (None, None)
    data = {
        "approval": {
            "id": item.pk,
            "kind": item.kind,
            "status": item.status,
            "reason": item.reason,
            "risk": item.risk,
            "digest": item.digest,
            "run": str(run_id) if run_id else None,
            "tool": item.payload.get("tool", ""),
            "question": item.payload.get("question", ""),
            "due_at": _time(item.due_at),
            "decided_at": _time(item.decided_at),
        }
    }
    _send(event, data, owners=[requester] if requester else [], deciders=True)


def _review_item_opened(sender: Any, item: ReviewItem, **kwargs: Any) -> None:
    if item.kind in RUN_APPROVALS:
        _approval(item, WebhookEvent.APPROVAL_REQUESTED)
    elif item.kind == ReviewKind.HANDOVER and item.subject_type == CONVERSATION_SUBJECT:
        # Sent while the conversation is being escalated, before it is saved: its reason is the item's.
        client = Conversation.objects.filter(pk=item.subject_id).values_list("client_id", flat=True).first()
        conversation = {
            "id": item.subject_id,
            "status": ConversationStatus.ESCALATED,
            "escalation_reason": item.reason,
            "persona": item.payload.get("persona", ""),
        }
        data = {"conversation": conversation}
        _send(WebhookEvent.CONVERSATION_ESCALATED, data, owners=[client] if client else [])


def _review_item_settled(sender: Any, item: ReviewItem, **kwargs: Any) -> None:
    if item.kind in RUN_APPROVALS:
        _approval(item, WebhookEvent.APPROVAL_DECIDED)


def _operator_replied(sender: Any, conversation: Conversation, message: Message, **kwargs: Any) -> None:
    data = {
        "conversation": {
            "id": str(conversation.pk),
            "status": conversation.status,
            "escalation_reason": conversation.escalation_reason,
        },
        "message": {
            "seq": message.seq,
            "role": message.role,
            "text": message.text,
            "created_at": _time(message.created_at),
        },
    }
    _send(WebhookEvent.CONVERSATION_OPERATOR_MESSAGE, data, owners=[conversation.client_id])
