"""An agent may say what input it takes (``input_schema``): a run whose input does not match is refused with field
errors, before anything is stored or queued; a persona's hand-off with such input goes to a person instead."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from agents.models import Run
from audit.models import AuditEvent
from config.errors import DomainError
from governance import services
from tests.agents.conftest import AgentFactory

pytestmark = pytest.mark.django_db

RESTOCK = {
    "instructions": "Restock.",
    "model": {"provider": "scripted", "name": "script"},
    "autonomy": "observe",
    "budgets": {"steps": 3},
    "input_schema": {
        "type": "object",
        "required": ["sku", "quantity"],
        "additionalProperties": False,
        "properties": {"sku": {"type": "string", "pattern": "^SKU-[0-9]+$"}, "quantity": {"type": "integer"}},
    },
    "script": [{"answer": "ok"}],
}


@pytest.fixture
def restock(agent: AgentFactory) -> str:
    agent("restock", RESTOCK)
    return "restock"


@pytest.mark.parametrize(
    ("given", "fields"),
    [
        ({"sku": "SKU-1"}, {"input"}),
        ({"sku": 42, "quantity": 1}, {"input.sku"}),
        ({"sku": "lamp", "quantity": "ten"}, {"input.sku", "input.quantity"}),
        ({"sku": "SKU-1", "quantity": 1, "note": "x"}, {"input"}),
    ],
)
def test_a_run_whose_input_does_not_match_is_refused_with_field_errors(
    api_as: Callable[[User], APIClient], operator: User, restock: str, given: dict[str, Any], fields: set[str]
) -> None:
    response = api_as(operator).post(f"/api/agents/{restock}/runs/", {"input": given}, format="json")

    assert response.status_code == 400, response.json()
    assert set(response.json()["error"]["fields"]) == fields
    assert not Run.objects.exists()
    assert not AuditEvent.objects.filter(action="agent.run.started").exists()


def test_a_matching_input_starts_the_run(
    api_as: Callable[[User], APIClient], operator: User, restock: str, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        response = api_as(operator).post(
            f"/api/agents/{restock}/runs/", {"input": {"sku": "SKU-9", "quantity": 3}}, format="json"
        )
    assert response.status_code == 202, response.json()


def test_an_input_schema_that_is_no_schema_is_refused_on_submit(test_tools: None, editor: User) -> None:
    obj = services.governed_object_create(
        actor=editor, kind="agent", slug="bad", name="bad", draft={**RESTOCK, "input_schema": {"type": "nonsense"}}
    )
    with pytest.raises(DomainError) as refused:
        services.version_submit(actor=editor, obj=obj)
    assert "draft.input_schema" in refused.value.fields
