"""A version that can never work does not reach review: a scripted call its tool's schema would refuse every time
is refused on submit, naming the call and the argument."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tests.support import tools_release

pytestmark = pytest.mark.django_db


def alerting(arguments: dict[str, str]) -> dict[str, Any]:
    return {
        "instructions": "Alert ops.",
        "model": {"provider": "scripted", "name": "script"},
        "autonomy": "autonomous",
        "budgets": {"steps": 4},
        "grants": [{"tool": "notify.send_alert"}],
        "script": [{"call": "notify.send_alert", "arguments": arguments}, {"answer": "Alerted ops"}],
    }


@pytest.fixture
def submit(api_as: Callable[[User], APIClient], editor: User, approver: User) -> Callable[..., Any]:
    tools_release(approver)
    client = api_as(editor)

    def submitted(spec: dict[str, Any]) -> Any:
        created = client.post("/api/agents/", {"slug": "alerter", "name": "Alerter", "draft": spec}, format="json")
        assert created.status_code == 201, created.json()
        return client.post("/api/agents/alerter/submit/", {}, format="json")

    return submitted


def test_a_scripted_call_with_an_argument_the_tool_does_not_take_is_refused(submit: Callable[..., Any]) -> None:
    """What a new user wrote: ``text`` where notify.send_alert takes ``message``. It used to pass validation with
    no finding, be approved and released, and then "succeed" with "Alerted ops" while every call was denied."""
    response = submit(alerting({"channel": "'ops'", "text": "'disk full'"}))

    assert response.status_code == 400, response.json()
    fields = response.json()["error"]["fields"]
    assert fields["draft.script[0].arguments.text"] == [
        "notify.send_alert takes no argument 'text' (its arguments: channel, message)."
    ]
    assert fields["draft.script[0].arguments"] == [
        "notify.send_alert needs the argument 'message', which is not given."
    ]


def test_the_validation_panel_says_so_before_submitting(
    api_as: Callable[[User], APIClient], editor: User, approver: User
) -> None:
    tools_release(approver)
    client = api_as(editor)
    client.post(
        "/api/agents/",
        {"slug": "alerter", "name": "Alerter", "draft": alerting({"channel": "'ops'", "text": "'x'"})},
        format="json",
    )

    validation = client.get("/api/agents/alerter/validation/").json()

    assert validation["valid"] is False
    assert "script[0].arguments.text" in str(validation)


def test_a_call_the_schema_takes_is_submitted(submit: Callable[..., Any]) -> None:
    response = submit(alerting({"channel": "'ops'", "message": "'disk full'"}))

    assert response.status_code == 201, response.json()
