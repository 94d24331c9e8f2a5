"""Operator hand-over: closing a conversation (by its client or an Operator), an Operator's reply to an escalated
conversation, handing it back to the persona, and the ``review_item_expired`` receiver that closes a conversation
nobody took over in time (registered at startup because ``personas.services`` imports this module).
"""

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.dispatch import receiver

from audit.context import Actor
from config.errors import Conflict, DomainError, NotAllowed
from governance.models import ReviewItem, ReviewKind, ReviewStatus
from governance.services import audit_actor, review_item_resolve, review_item_withdraw
from governance.signals import review_item_expired
from personas import engine
from personas.models import Conversation, ConversationStatus, Message, Role
from personas.services import phrasing
from personas.services.turns import (
    _audit,
    _close,
    _Context,
    _context,
    _escalate,
    _locked,
    _Outgoing,
    _persona_message,
    _reply,
    _save,
    _store,
)
from personas.signals import operator_replied

REPLY_PERMISSION = "personas.reply_conversation"


def _pending_handover(conversation: Conversation) -> ReviewItem | None:
    return ReviewItem.objects.filter(
        kind=ReviewKind.HANDOVER,
        subject_type=Conversation._meta.label_lower,
        subject_id=str(conversation.pk),
        status=ReviewStatus.PENDING,
    ).first()


@transaction.atomic
def conversation_close(
    *, actor: User, conversation: Conversation, rating: int | None = None, comment: str = "", as_operator: bool = False
) -> Conversation:
    """Close a conversation: its client may (with a rating from 1 to 5 and a comment), and so may an Operator
    (``as_operator``, from the console). A pending hand-over is resolved by the Operator who closes, or withdrawn
    when the client closes."""
    conversation = _locked(conversation)
    if as_operator and not actor.has_perm(REPLY_PERMISSION):
        raise NotAllowed(f"Closing conversations as an operator needs the permission {REPLY_PERMISSION}.")
    if not as_operator and conversation.client_id != actor.pk:
        raise NotAllowed("Only the conversation's client or an Operator may close it.")
    is_client = not as_operator
    if conversation.status == ConversationStatus.CLOSED:
        raise Conflict("This conversation is closed already.", code="closed")
    if rating is not None and not 1 <= rating <= 5:
        raise DomainError("The rating is out of range.", fields={"rating": ["Give a rating from 1 to 5."]})
    item = _pending_handover(conversation)
    if item is not None:
        if is_client:
            review_item_withdraw(item=item)
        else:
            review_item_resolve(actor=actor, item=item, comment=comment or "closed by an operator")
    _close(conversation, conversation.version.spec)
    if is_client:
        conversation.rating, conversation.comment = rating, comment
    _save(conversation, "status", "closed_at", "state", "rating", "comment")
    _audit(
        actor=audit_actor(actor),
        action="persona.conversation.closed",
        target=conversation,
        details={"by": "client" if is_client else "operator", "rating": rating if is_client else None},
    )
    return conversation


def _require_escalated(actor: User, conversation: Conversation) -> None:
    if not actor.has_perm(REPLY_PERMISSION):
        raise NotAllowed(f"Answering conversations needs the permission {REPLY_PERMISSION} (Operators).")
    if conversation.status != ConversationStatus.ESCALATED:
        raise Conflict(
            f"This conversation is {conversation.get_status_display()}: only an escalated one is answered by a person.",
            code="not_escalated",
        )


@transaction.atomic
def conversation_reply(*, actor: User, conversation: Conversation, text: str) -> Message:
    """An Operator's answer to an escalated conversation, stored as an operator message."""
    conversation = _locked(conversation)
    _require_escalated(actor, conversation)
    if not text.strip():
        raise DomainError("Write a reply.", fields={"text": ["This field may not be blank."]})
    ctx = _context(conversation, audit_actor(actor))
    (message,) = _store(ctx, [_Outgoing(text, Role.OPERATOR, author=actor)])
    _save(conversation)
    _audit(
        actor=ctx.actor,
        action="persona.conversation.operator_replied",
        target=conversation,
        details={"message": message.seq},
    )
    operator_replied.send(sender=Conversation, conversation=conversation, message=message)
    return message


def conversation_hand_back(*, actor: User, conversation: Conversation, comment: str = "") -> Conversation:
    """An Operator gives an escalated conversation back to the persona, which says so and starts afresh; what it
    says is committed as scripted, then phrased by its model, if it has one (``personas.services.phrasing``)."""
    conversation, ctx, messages = _hand_back(actor=actor, conversation=conversation, comment=comment)
    phrasing.phrase(ctx, messages)
    return conversation


@transaction.atomic
def _hand_back(
    *, actor: User, conversation: Conversation, comment: str
) -> tuple[Conversation, _Context, list[Message]]:
    conversation = _locked(conversation)
    _require_escalated(actor, conversation)
    ctx = _context(conversation, audit_actor(actor))
    item = _pending_handover(conversation)
    if item is not None:
        review_item_resolve(actor=actor, item=item, comment=comment or "handed back to the persona")
    conversation.status, conversation.escalation_reason = ConversationStatus.ACTIVE, ""
    conversation.state = {**engine.initial_state(), "slots": (conversation.state or {}).get("slots", {})}
    back = _reply(ctx, engine.message(ctx.spec, "handed_back"), "intent")
    messages = _store(ctx, [_persona_message(ctx, back)])
    if ctx.escalate:
        _escalate(ctx, ctx.escalate)
    _save(conversation, "status", "escalation_reason", "state")
    _audit(
        actor=ctx.actor,
        action="persona.conversation.handed_back",
        target=conversation,
        details={"comment": comment, "messages": [m.seq for m in messages]},
    )
    return conversation, ctx, messages


@receiver(review_item_expired, dispatch_uid="personas.handover_expired")
def _handover_expired(sender: Any, item: ReviewItem, **kwargs: Any) -> None:
    """Nobody took the conversation in time: close it with a system message (expiry denies)."""
    if item.kind != ReviewKind.HANDOVER or item.subject_type != Conversation._meta.label_lower:
        return
    conversation = Conversation.objects.filter(pk=item.subject_id).select_related("persona", "version").first()
    if conversation is None or conversation.status != ConversationStatus.ESCALATED:
        return
    conversation = _locked(conversation)
    actor = Actor.system("review-expiry")
    ctx = _context(conversation, actor)
    text = "No one could take over this conversation in time, so it is closed. Please start a new one."
    _store(ctx, [_Outgoing(text, Role.SYSTEM)])
    _close(conversation, ctx.spec)
    _save(conversation, "status", "closed_at", "state")
    _audit(actor=actor, action="persona.conversation.closed", target=conversation, details={"by": "expiry"})
