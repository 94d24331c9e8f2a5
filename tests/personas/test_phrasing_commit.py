"""A persona's model phrasing happens with no transaction open and no row locked: the loopback model server holds
the phrasing request until the test lets it go, and meanwhile the test looks at the database from another
connection. The turn is already committed with its scripted texts (what a crash would leave), the conversation's
row can be locked at once, and another message to the conversation is answered; then the phrasing is swapped in.
Checked for each place a persona speaks: the greeting, a turn, an Operator's hand-back and an agent's relayed
answer."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, SupportsIndex

import pytest
from django.contrib.auth.models import User
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from agents import runtime
from agents.models import Run
from personas import services
from personas.models import Conversation, ConversationStatus, Message
from tests.chat_server import ModelServer, Reply, completion
from tests.personas.test_conversations import events
from tests.personas.test_phrasing import KEY_VARIABLE, release

pytestmark = pytest.mark.django_db(transaction=True)

CLERK: dict[str, Any] = {
    "instructions": "Say it is ordered.",
    "model": {"provider": "scripted", "name": "clerk"},
    "autonomy": "supervised",
    "budgets": {"steps": 5},
    "script": [{"answer": "ordered"}],
}


class HeldReplies(list[Reply]):
    """The server's scripted replies, one of them held: the request that gets it waits until ``release`` is set."""

    def __init__(self, replies: list[Reply], held: Reply) -> None:
        super().__init__(replies)
        self.held, self.arrived, self.release = held, threading.Event(), threading.Event()

    def pop(self, index: SupportsIndex = -1) -> Reply:
        reply = super().pop(index)
        if reply is self.held:
            self.arrived.set()
            self.release.wait(timeout=60)
        return reply


@dataclass
class Call:
    """A call made in a thread of its own: its database connection, and what it returned or raised."""

    connection: BaseDatabaseWrapper | None = None
    outcome: list[Any] = field(default_factory=list)

    def in_transaction(self) -> bool:
        """Whether the call's connection is inside a transaction (``transaction.atomic``) now."""
        assert self.connection is not None
        return self.connection.in_atomic_block

    def result(self) -> Any:
        (outcome,) = self.outcome
        assert not isinstance(outcome, BaseException), outcome
        return outcome


@contextmanager
def held(chat: ModelServer, replies: list[Reply], holding: Reply, call: Callable[[], Any]) -> Iterator[Call]:
    """Run ``call`` in a thread of its own while the server holds the request answered ``holding``; the block runs
    once that request has arrived, and the call is let go and finished after it."""
    chat.replies = scripted = HeldReplies(replies, holding)
    made = Call()

    def work() -> None:
        made.connection = connections[DEFAULT_DB_ALIAS]
        try:
            made.outcome.append(call())
        except BaseException as error:  # reported by Call.result in the test's thread
            made.outcome.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    try:
        assert scripted.arrived.wait(timeout=30), f"the model was never asked: {made.outcome}"
        yield made
    finally:
        scripted.release.set()
        thread.join(timeout=60)
    assert not thread.is_alive()


@pytest.fixture
def persona(editor: User, approver: User, chat: ModelServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A persona that phrases everything, with a flow that hands off to the ``clerk`` agent."""
    monkeypatch.setenv(KEY_VARIABLE, "sk-loopback")
    release(editor, approver, "agent", "clerk", CLERK)
    spec = {
        "greeting": "Hello, I can tell you our opening hours.",
        "fallback": "Sorry, I only know our opening hours.",
        "handover": "A colleague will help you.",
        "llm_phrasing": {
            "enabled": True,
            "provider": "openai",
            "model": "phraser",
            "base_url": chat.base_url,
            "api_key_env": KEY_VARIABLE,
            "timeout_seconds": 30,  # longer than the test holds a request
        },
        "flows": [
            {
                "id": "hours",
                "trigger": {"keywords": ["hours"]},
                "steps": [{"id": "tell", "type": "end", "text": "We are open 9 to 5."}],
            },
            {
                "id": "order",
                "trigger": {"keywords": ["order"]},
                "steps": [{"id": "go", "type": "handoff", "agent": "clerk", "reply": "Done: {{result.answer}}."}],
            },
        ],
    }
    release(editor, approver, "persona", "hal", spec)


def stored(conversation: Conversation) -> list[tuple[int, str, list[str]]]:
    """The transcript as committed, read on the test's own connection."""
    messages = Message.objects.filter(conversation=conversation).order_by("seq")
    return [(m.seq, m.text, [flag["kind"] for flag in m.flags]) for m in messages]


def started(chat: ModelServer, client: User) -> Conversation:
    chat.replies = [completion("Hi!")]
    return services.conversation_start(client=client, persona="hal")


def test_the_greeting_is_phrased_after_the_conversation_is_committed(
    chat: ModelServer, persona: None, outsider: User
) -> None:
    holding = completion("Hi there!")
    with held(chat, [holding], holding, lambda: services.conversation_start(client=outsider, persona="hal")) as call:
        assert not call.in_transaction()
        conversation = Conversation.objects.get(client=outsider)
        assert stored(conversation) == [(1, "Hello, I can tell you our opening hours.", ["phrasing.pending"])]
    assert call.result() == conversation
    assert stored(conversation) == [(1, "Hi there!", ["phrasing.model"])]


def test_a_turn_is_phrased_after_it_is_committed_and_another_message_is_answered_meanwhile(
    chat: ModelServer, persona: None, outsider: User
) -> None:
    conversation = started(chat, outsider)
    first = completion("We're open from 9 till 5.")
    with held(
        chat,
        [first, completion("Open nine to five!")],
        first,
        lambda: services.conversation_message(client=outsider, conversation=conversation, text="hours?"),
    ) as call:
        assert not call.in_transaction()
        # What a crash now would leave: the turn committed whole, with its scripted reply, a valid answer.
        assert stored(conversation)[1:] == [
            (2, "hours?", []),
            (3, "We are open 9 to 5.", ["phrasing.pending"]),
        ]
        assert Conversation.objects.get(pk=conversation.pk).last_seq == 3
        second = services.conversation_message(client=outsider, conversation=conversation, text="hours, again?")
        assert [m.text for m in second.messages] == ["hours, again?", "Open nine to five!"]
    answer = call.result()
    assert [(m.seq, m.text) for m in answer.messages] == [(2, "hours?"), (3, "We're open from 9 till 5.")]
    assert stored(conversation)[1:] == [
        (2, "hours?", []),
        (3, "We're open from 9 till 5.", ["phrasing.model"]),
        (4, "hours, again?", []),
        (5, "Open nine to five!", ["phrasing.model"]),
    ]
    after = Conversation.objects.get(pk=conversation.pk)
    assert (after.last_seq, after.status, after.state["flow"]) == (5, ConversationStatus.ACTIVE, None)
    phrased = events(str(conversation.pk), "persona.conversation.phrased")
    assert [event.details["phrased"] for event in phrased] == [[1], [5], [3]]  # the held turn's swap came last


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SELECT ... FOR UPDATE NOWAIT: SQLite has no row locks")
def test_the_conversations_row_is_not_locked_while_the_model_phrases(
    chat: ModelServer, persona: None, outsider: User
) -> None:
    conversation = started(chat, outsider)
    holding = completion("We're open from 9 till 5.")
    with held(
        chat,
        [holding],
        holding,
        lambda: services.conversation_message(client=outsider, conversation=conversation, text="hours?"),
    ) as call:
        with transaction.atomic():  # NOWAIT: a lock held elsewhere is an error at once, not a wait
            locked = Conversation.objects.select_for_update(nowait=True).get(pk=conversation.pk)
        assert locked.last_seq == 3
    assert call.result().messages[1].text == "We're open from 9 till 5."


def test_a_hand_back_is_phrased_after_it_is_committed(
    chat: ModelServer, persona: None, outsider: User, operator: User
) -> None:
    conversation = started(chat, outsider)
    chat.replies = [completion("Someone will help you now.")]
    services.conversation_message(client=outsider, conversation=conversation, text="I want to talk to a person")
    holding = completion("Back with you. What next?")
    with held(
        chat,
        [holding],
        holding,
        lambda: services.conversation_hand_back(actor=operator, conversation=conversation),
    ) as call:
        assert not call.in_transaction()
        assert Conversation.objects.get(pk=conversation.pk).status == ConversationStatus.ACTIVE
        assert stored(conversation)[-1][2] == ["phrasing.pending"]
    call.result()
    assert stored(conversation)[-1][1:] == ("Back with you. What next?", ["phrasing.model"])


def test_an_agents_answer_is_phrased_after_the_run_that_gives_it_is_committed(
    chat: ModelServer, persona: None, outsider: User
) -> None:
    conversation = started(chat, outsider)
    with transaction.atomic():
        turn = services.conversation_message(client=outsider, conversation=conversation, text="order please")
        connection.run_on_commit.clear()  # not sent to a worker: this test advances the run itself
    assert (turn.status, len(turn.messages)) == (ConversationStatus.WAITING_ON_AGENT, 1)
    run = Conversation.objects.select_related("run").get(pk=conversation.pk).run
    assert run is not None
    holding = completion("All done: it's ordered.")
    with held(chat, [holding], holding, lambda: runtime.advance(run.pk, "test-owner")) as call:
        assert not call.in_transaction()
        assert Run.objects.get(pk=run.pk).status == "succeeded"
        assert stored(conversation)[-1][1:] == ("Done: ordered.", ["phrasing.pending"])
    call.result()
    assert stored(conversation)[-1][1:] == ("All done: it's ordered.", ["phrasing.model"])
