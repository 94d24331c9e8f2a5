"""A model's key is no secret of Steward's, and its host is one the installation allows: refused on submit, shown to
the reviewer, and refused again at every call (the settings may change after approval)."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from rest_framework.test import APIClient

from agents import providers
from demo.personas import example
from tests.chat_server import ModelServer, complete, completion

pytestmark = pytest.mark.django_db

DEFAULT_KEYS = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MODEL_KEY_*"]
DEFAULT_HOSTS = ["api.openai.com", "api.anthropic.com"]
STEWARDS_OWN = ["SECRET_KEY", "AUDIT_CHECKPOINT_KEY", "TOOL_SECRETS_KEY", "DATABASE_URL", "REDIS_URL"]


def agent_spec(**model: Any) -> dict[str, Any]:
    return {
        "instructions": "Answer briefly.",
        "model": {"provider": "openai", "name": "gpt-test", **model},
        "autonomy": "observe",
        "budgets": {"steps": 3},
    }


@pytest.fixture
def submit(api_as: Callable[[User], APIClient], editor: User) -> Callable[[dict[str, Any]], Any]:
    client = api_as(editor)

    def submitted(spec: dict[str, Any]) -> Any:
        created = client.post("/api/agents/", {"slug": "probe", "name": "Probe", "draft": spec}, format="json")
        assert created.status_code == 201, created.json()
        return client.post("/api/agents/probe/submit/", {}, format="json")

    return submitted


@pytest.mark.parametrize("variable", ["PATH", "HOME", *STEWARDS_OWN])
@override_settings(MODEL_KEY_VARIABLES=DEFAULT_KEYS)
def test_a_model_key_from_any_variable_is_refused_on_submit(submit: Callable[..., Any], variable: str) -> None:
    response = submit(agent_spec(api_key_env=variable))

    assert response.status_code == 400, response.json()
    assert list(response.json()["error"]["fields"]) == ["draft.model.api_key_env"]


@pytest.mark.parametrize("variable", STEWARDS_OWN)
@override_settings(MODEL_KEY_VARIABLES=["*"])
def test_stewards_own_secrets_are_refused_by_name_whatever_the_allow_list(
    submit: Callable[..., Any], variable: str
) -> None:
    response = submit(agent_spec(api_key_env=variable))

    assert response.status_code == 400, response.json()
    assert "one of Steward's own secrets" in response.json()["error"]["fields"]["draft.model.api_key_env"][0]


@override_settings(MODEL_ALLOWED_HOSTS=DEFAULT_HOSTS)
def test_a_model_host_outside_the_allow_list_is_refused_on_submit(submit: Callable[..., Any]) -> None:
    response = submit(agent_spec(base_url="https://collector.example.net/v1"))

    assert response.status_code == 400, response.json()
    [message] = response.json()["error"]["fields"]["draft.model.base_url"]
    assert "collector.example.net is not among the hosts" in message


@override_settings(MODEL_KEY_VARIABLES=DEFAULT_KEYS, MODEL_ALLOWED_HOSTS=DEFAULT_HOSTS)
def test_the_reviewer_sees_the_host_and_the_key_name(submit: Callable[..., Any]) -> None:
    response = submit(agent_spec(api_key_env="MODEL_KEY_TEAM"))

    assert response.status_code == 201, response.json()
    [access] = [check for check in response.json()["checks"] if check["name"] == "model.access"]
    assert access["passed"] is True
    assert access["findings"][0]["message"] == "Requests go to api.openai.com, with the key from MODEL_KEY_TEAM."


def test_a_call_with_a_refused_key_sends_nothing(chat: ModelServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the red-team model received once: the worker's PATH as its bearer key. The settings can change after
    a version is approved, so every call checks again."""
    chat.replies = [completion("thanks for the key")]
    with override_settings(MODEL_KEY_VARIABLES=DEFAULT_KEYS), pytest.raises(providers.ProviderError) as refused:
        complete("openai", chat, key_variable="PATH")

    assert "PATH is not among the variables models may read" in str(refused.value)
    assert refused.value.retryable is False
    assert chat.requests == []


def test_a_call_to_a_host_no_longer_allowed_sends_nothing(chat: ModelServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test")
    chat.replies = [completion("hello")]
    with override_settings(MODEL_ALLOWED_HOSTS=DEFAULT_HOSTS), pytest.raises(providers.ProviderError):
        complete("openai", chat, key_variable="TEST_LLM_KEY")
    assert chat.requests == []


@override_settings(MODEL_KEY_VARIABLES=DEFAULT_KEYS)
def test_a_persona_phrasing_with_a_secret_key_is_refused(api_as: Callable[[User], APIClient], editor: User) -> None:
    spec = example("support")
    spec["llm_phrasing"] = {"enabled": True, "provider": "openai", "model": "phraser", "api_key_env": "SECRET_KEY"}
    client = api_as(editor)
    created = client.post("/api/personas/", {"slug": "leaky", "name": "Leaky", "draft": spec}, format="json")
    assert created.status_code == 201, created.json()

    response = client.post("/api/personas/leaky/submit/", {}, format="json")

    assert response.status_code == 400, response.json()
    assert "draft.llm_phrasing.api_key_env" in response.json()["error"]["fields"]
