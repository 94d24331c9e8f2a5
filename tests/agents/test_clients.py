"""Client applications: the Client role talks to personas and starts runs, and nothing else; each client sees and
cancels only the runs it started, exactly as it sees only its own conversations."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from agents.models import Run, RunStatus
from governance.models import LabelPointer
from governance.roles import Role
from tests.agents.conftest import AgentFactory

pytestmark = pytest.mark.django_db

HELLO = {
    "instructions": "Say hello.",
    "model": {"provider": "scripted", "name": "script"},
    "autonomy": "observe",
    "budgets": {"steps": 3},
    "script": [{"answer": "hello"}],
}


@pytest.fixture
def hello(agent: AgentFactory) -> str:
    agent("hello", HELLO)
    return "hello"


@pytest.fixture
def clients(make_user: Callable[..., User], api_as: Callable[[User], APIClient]) -> dict[str, APIClient]:
    return {name: api_as(make_user(name, Role.CLIENT)) for name in ("shop-app", "other-app")}


def start(client: APIClient, agent: str, **extra: Any) -> str:
    response = client.post(f"/api/agents/{agent}/runs/", {"input": {"ask": "hi"}, **extra}, format="json")
    assert response.status_code == 202, response.json()
    return str(response.json()["id"])


def test_a_second_client_neither_reads_nor_cancels_the_first_clients_runs(
    clients: dict[str, APIClient], hello: str, django_capture_on_commit_callbacks: Any
) -> None:
    ours, theirs = clients["shop-app"], clients["other-app"]
    with django_capture_on_commit_callbacks(execute=False):
        run = start(ours, hello)

    assert theirs.get(f"/api/runs/{run}/").status_code == 404
    assert theirs.get("/api/runs/").json()["results"] == []
    cancel = theirs.post(f"/api/runs/{run}/cancel/", {"reason": "not mine"}, format="json")
    assert cancel.status_code == 404, cancel.json()
    compensate = theirs.post(f"/api/runs/{run}/compensate/", {"reason": "not mine"}, format="json")
    assert compensate.status_code == 404, compensate.json()
    assert Run.objects.get(pk=run).status == RunStatus.QUEUED

    # Its own run, a client reads and cancels.
    assert [listed["id"] for listed in ours.get("/api/runs/").json()["results"]] == [run]
    cancelled = ours.post(f"/api/runs/{run}/cancel/", {"reason": "changed my mind"}, format="json")
    assert cancelled.status_code == 200, cancelled.json()
    assert Run.objects.get(pk=run).status == RunStatus.CANCELLED


def test_operators_still_see_and_cancel_every_run(
    clients: dict[str, APIClient],
    api_as: Callable[[User], APIClient],
    operator: User,
    hello: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        run = start(clients["shop-app"], hello)
    as_operator = api_as(operator)
    assert as_operator.get(f"/api/runs/{run}/").status_code == 200
    assert as_operator.post(f"/api/runs/{run}/cancel/", {"reason": "incident"}, format="json").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/tools/"),
        ("get", "/api/agents/"),
        ("get", "/api/personas/"),
        ("get", "/api/reviews/"),
        ("get", "/api/approvals/"),
        ("get", "/api/releases/"),
        ("get", "/api/audit/events/"),
        ("get", "/api/metrics/"),
        ("post", "/api/agents/hello/rollback/"),
        ("post", "/api/releases/"),
    ],
)
def test_a_client_can_do_nothing_else(clients: dict[str, APIClient], hello: str, method: str, path: str) -> None:
    response = getattr(clients["shop-app"], method)(path, {}, format="json")
    assert response.status_code == 403, (path, response.status_code)


def test_a_client_rolls_nothing_back(clients: dict[str, APIClient], hello: str) -> None:
    """The demo's client token used to be an Operator's, and rolled production back."""
    pointer = LabelPointer.objects.get(object__slug="hello", label__name="production")
    response = clients["shop-app"].post(
        f"/api/releases/{pointer.release_id}/rollback/", {"reason": "fuzzing"}, format="json"
    )
    assert response.status_code == 403, response.json()
    assert LabelPointer.objects.filter(object__slug="hello", label__name="production").exists()


def test_a_client_is_no_console_user(make_user: Callable[..., User]) -> None:
    assert not make_user("kiosk-app", Role.CLIENT).is_staff
