"""Messages sent with an idempotency key, as runs take one (``agents.services.run_start``): a client that lost the
answer to a message sends it again with the same key and gets the same answer, and nothing is stored twice.

A key belongs to its conversation. The same key with the same text is answered from the ``MessageReceipt`` the
first turn left: its messages as stored and the conversation's status as that turn left it, whatever happened
since (the conversation may be closed by now). The same key with another text is refused (409,
``idempotency_key_reused``). Called by ``personas.services.conversation_message`` under the conversation's lock, so
two requests with one key are answered one after the other: the second from the receipt of the first.
"""

import hashlib
from dataclasses import dataclass

from config.api_input import IDEMPOTENCY_KEY_HEADER
from config.errors import Conflict
from personas.models import Conversation, Message, MessageReceipt


@dataclass(frozen=True)
class Answer:
    """What a user's message was answered: the stored messages of the turn (the user's first) and the status the
    conversation was left in."""

    messages: list[Message]
    status: str
    replayed: bool = False


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def replay(conversation: Conversation, key: str, text: str) -> Answer | None:
    """The turn a message with ``key`` was answered, when there was one; a ``Conflict`` if its text was another."""
    found = MessageReceipt.objects.filter(conversation=conversation, idempotency_key=key).select_related("message")
    receipt = found.first()
    if receipt is None:
        return None
    if receipt.text_digest != _digest(text):
        raise Conflict(
            "This idempotency key was used for a different message.",
            code="idempotency_key_reused",
            fields={IDEMPOTENCY_KEY_HEADER: [f"Already used for message {receipt.message_id} of this conversation."]},
        )
    first = receipt.message
    replies = conversation.messages.filter(seq__gt=first.seq, seq__lte=receipt.last_seq).select_related("author")
    return Answer([first, *replies.order_by("seq")], receipt.status, replayed=True)


def record(conversation: Conversation, key: str, text: str, messages: list[Message]) -> None:
    """Keep what the turn answered, in the turn's transaction."""
    MessageReceipt.objects.create(
        conversation=conversation,
        idempotency_key=key,
        text_digest=_digest(text),
        message=messages[0],
        last_seq=messages[-1].seq,
        status=conversation.status,
    )
