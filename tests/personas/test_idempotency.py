"""A message sent with an ``Idempotency-Key``: a retry with the same key and text (after a lost answer) is answered
the same and stores nothing; the same key with another text is refused in the one error shape; a key belongs to its
conversation; a bad key is a field error of the header; two requests racing with one key store one turn; the
OpenAPI schema documents the header."""

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from personas.models import Message, MessageReceipt
from tests.personas.test_conversations import (
    as_client,
    client_user,
    error,
    events,
    guide,
    helper,
    lifecycle,
    start,
    transcript,
)

__all__ = ["as_client", "client_user", "guide", "helper", "lifecycle"]  # the fixtures of test_conversations.py

pytestmark = pytest.mark.usefixtures("helper")


def send(client: APIClient, conversation: str, text: str, key: str | None) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(f"/api/conversations/{conversation}/messages/", {"text": text}, format="json", headers=headers)


def stored(conversation: str) -> list[tuple[int, str, str]]:
    messages = Message.objects.filter(conversation_id=conversation).order_by("seq")
    return list(messages.values_list("seq", "role", "text"))


@pytest.mark.django_db
def test_the_same_key_and_text_again_is_answered_as_the_first_time_and_stores_nothing(as_client: APIClient) -> None:
    conversation = start(as_client)["id"]
    first = send(as_client, conversation, "repeat", "turn-1")
    assert first.status_code == 201, first.json()
    after_first = stored(conversation)
    assert send(as_client, conversation, "thanks", "turn-2").status_code == 201  # the conversation moves on
    assert as_client.post(f"/api/conversations/{conversation}/close/", {}, format="json").status_code == 200

    again = send(as_client, conversation, "repeat", "turn-1")

    assert again.status_code == 200, again.json()
    assert again.json() == first.json()
    assert again.json()["status"] == "active"  # as that turn left it, though the conversation is closed now
    assert send(as_client, conversation, "repeat", "turn-3").status_code == 409  # closed: a new message is refused
    assert stored(conversation)[: len(after_first)] == after_first
    assert len(stored(conversation)) == len(after_first) + 2  # turn-2's message and reply, nothing more
    turns = events(conversation, "persona.conversation.turn")
    assert [turn.details.get("idempotency_key") for turn in turns] == ["turn-1", "turn-2"]
    assert MessageReceipt.objects.filter(conversation_id=conversation).count() == 2


@pytest.mark.django_db
def test_the_same_key_with_another_text_is_refused_in_the_one_error_shape(as_client: APIClient) -> None:
    conversation = start(as_client)["id"]
    first = send(as_client, conversation, "repeat", "k")
    before = stored(conversation)

    refused = error(send(as_client, conversation, "something else", "k"), 409)

    assert refused["code"] == "idempotency_key_reused"
    user_message = Message.objects.get(conversation_id=conversation, seq=first.json()["message"]["seq"])
    assert refused["fields"] == {
        "Idempotency-Key": [f"Already used for message {user_message.pk} of this conversation."]
    }
    assert stored(conversation) == before


@pytest.mark.django_db
def test_a_key_belongs_to_its_conversation_and_without_one_every_message_is_stored(as_client: APIClient) -> None:
    one, other = start(as_client)["id"], start(as_client)["id"]
    assert send(as_client, one, "repeat", "same").status_code == 201
    assert send(as_client, other, "repeat", "same").status_code == 201
    assert send(as_client, other, "hello", None).status_code == 201
    assert send(as_client, other, "hello", None).status_code == 201
    assert [role for _, role, _ in stored(other)].count("user") == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "problem"),
    [("   ", "May not be blank."), ("k" * 201, "At most 200 characters."), ("clé", "Printable ASCII characters only.")],
)
def test_a_key_that_cannot_be_one_is_a_field_error_of_the_header(as_client: APIClient, key: str, problem: str) -> None:
    conversation = start(as_client)["id"]
    before = stored(conversation)
    refused = error(send(as_client, conversation, "repeat", key), 400)
    assert refused["fields"] == {"Idempotency-Key": [problem]}
    assert stored(conversation) == before


@pytest.mark.django_db
def test_another_clients_conversation_is_not_found_whatever_the_key(
    as_client: APIClient, api_as: Callable[[User], APIClient], make_user: Callable[..., User]
) -> None:
    conversation = start(as_client)["id"]
    first = send(as_client, conversation, "repeat", "mine")
    assert first.status_code == 201
    error(send(api_as(make_user("otto-other")), conversation, "repeat", "mine"), 404)


@pytest.mark.django_db(transaction=True)
def test_two_requests_racing_with_one_key_store_one_turn_and_get_one_answer(client_user: User) -> None:
    token, _ = Token.objects.get_or_create(user=client_user)
    clients = [APIClient(), APIClient()]
    for racing in clients:
        racing.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    conversation = start(clients[0])["id"]
    gate, answers = threading.Barrier(2), []

    def race(racing: APIClient) -> None:
        gate.wait()
        answers.append(send(racing, conversation, "repeat", "once"))

    threads = [threading.Thread(target=race, args=(racing,)) for racing in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(answer.status_code for answer in answers) == [200, 201]
    assert answers[0].json() == answers[1].json()
    assert [role for _, role, _ in stored(conversation)].count("user") == 1
    assert len(transcript(clients[0], conversation)["messages"]) == 3  # greeting, the message, its reply


@pytest.mark.django_db
def test_the_schema_documents_the_header_and_the_replayed_answer(api: APIClient) -> None:
    schema = api.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/conversations/{id}/messages/"]["post"]
    (header,) = [parameter for parameter in operation["parameters"] if parameter["in"] == "header"]
    assert (header["name"], header.get("required", False), header["schema"]["type"]) == (
        "Idempotency-Key",
        False,
        "string",
    )
    assert "nothing is stored" in header["description"]
    assert {"200", "201", "409"} <= set(operation["responses"])
