"""From production to a scenario: a conversation or a run becomes a scenario of a suite's draft in one action,
with what happened as its inputs and no expectations, for an editor to complete and submit for review."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from agents import runtime
from audit.models import AuditEvent
from governance.models import GovernedObject
from tests.agents.unit_tools import release_agent, spec, start_run
from tests.personas.test_conversations import as_client, client_user, guide, helper, lifecycle, start

__all__ = ["as_client", "client_user", "guide", "helper", "lifecycle"]  # the fixtures of test_conversations.py


def capture(client: APIClient, **body: Any) -> Any:
    return client.post("/api/suites/from-production/", body, format="json")


def say(client: APIClient, conversation: str, text: str) -> None:
    response = client.post(f"/api/conversations/{conversation}/messages/", {"text": text}, format="json")
    assert response.status_code == 201, response.json()


@pytest.mark.django_db
@pytest.mark.usefixtures("helper")
def test_a_conversation_becomes_a_scenario_of_its_user_turns_and_the_suite_is_then_reviewed(
    as_client: APIClient, api_as: Callable[[User], APIClient], editor: User
) -> None:
    conversation = start(as_client)["id"]
    say(as_client, conversation, "Where is my order?")
    say(as_client, conversation, "thanks")
    as_editor = api_as(editor)

    first = capture(as_editor, suite="helper-suite", conversation=conversation)
    again = capture(as_editor, suite="helper-suite", conversation=conversation, name=f"conversation {conversation[:8]}")

    assert first.status_code == 201, first.json()
    turns = [{"user": "Where is my order?"}, {"user": "thanks"}]
    assert first.json() == {
        "suite": "helper-suite",
        "scenario": {"name": f"conversation {conversation[:8]}", "turns": turns},
    }
    assert again.json()["scenario"]["name"] == f"conversation {conversation[:8]} (2)"
    suite = GovernedObject.objects.get(kind="suite", slug="helper-suite")
    assert suite.draft["subject"] == {"kind": "persona", "slug": "helper"}
    assert len(suite.draft["scenarios"]) == 2
    captured = AuditEvent.objects.filter(action="evaluations.scenario.captured").order_by("sequence")
    assert [event.details["source"] for event in captured] == [f"personas.conversation:{conversation}"] * 2
    assert {event.actor_label for event in captured} == {editor.username}
    # What it captured is a valid suite: the editor adds expectations and submits it for review.
    submitted = as_editor.post("/api/suites/helper-suite/submit/", {"note": "from production"}, format="json")
    assert submitted.status_code == 201, submitted.json()
    assert submitted.json()["status"] == "pending_review"


@pytest.mark.django_db(transaction=True)
def test_a_run_becomes_a_scenario_with_its_input_and_its_tools_results_as_fixtures(
    api_as: Callable[[User], APIClient],
    editor: User,
    approver: User,
    operator: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    script: list[dict[str, Any]] = [
        {"call": "unit.echo", "arguments": {"text": "input.word"}},
        {"answer": "said {{ last.echo }}"},
    ]
    release_agent(editor, approver, "echoer", spec(script))
    run = start_run(django_capture_on_commit_callbacks, operator, "echoer", {"word": "hi"})
    runtime.advance(run.pk, "tests")

    response = capture(api_as(editor), suite="echoer-suite", run=str(run.pk), name="echoes a word")

    assert response.status_code == 201, response.json()
    assert response.json()["scenario"] == {
        "name": "echoes a word",
        "input": {"word": "hi"},
        "fixtures": {"unit.echo": [{"arguments": {"text": "hi"}, "result": {"echo": "hi"}}]},
    }
    assert GovernedObject.objects.get(slug="echoer-suite").draft["subject"] == {"kind": "agent", "slug": "echoer"}


@pytest.mark.django_db
@pytest.mark.usefixtures("helper")
def test_what_cannot_be_captured_is_refused_in_the_one_error_shape(
    as_client: APIClient, api_as: Callable[[User], APIClient], editor: User, viewer: User
) -> None:
    conversation = start(as_client)["id"]
    say(as_client, conversation, "hello")
    as_editor = api_as(editor)
    neither = capture(as_editor, suite="s")
    assert neither.status_code == 400
    assert neither.json()["error"]["fields"] == {"conversation": ["Give a conversation or a run, one of them."]}
    unknown = capture(as_editor, suite="s", run="00000000-0000-0000-0000-000000000000")
    assert unknown.status_code == 404
    assert capture(api_as(viewer), suite="s", conversation=conversation).status_code == 403
    GovernedObject.objects.create(
        kind="suite", slug="other", name="Other", draft={"subject": {"kind": "agent", "slug": "x"}}
    )
    mismatch = capture(as_editor, suite="other", conversation=conversation)
    assert mismatch.status_code == 400
    assert mismatch.json()["error"]["fields"] == {"suite": ["Its subject is {'kind': 'agent', 'slug': 'x'}."]}
    assert not AuditEvent.objects.filter(action="evaluations.scenario.captured").exists()
