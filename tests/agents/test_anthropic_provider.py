"""The Anthropic provider, through the real ``anthropic`` SDK, against an HTTP server on loopback speaking the
Messages protocol: how the Chat Completions-shaped conversation is sent (system, tools, tool_use and tool_result
blocks, max_tokens), how answers and tool calls come back, which failures are worth a retry, the missing key and
the missing package; then a whole run driven in-process (``runtime.advance``) with such a model.
"""

import functools
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User

from agents import providers, runtime
from agents.models import Run, RunStatus, StepKind, StepStatus
from tests import chat_server
from tests.agents.unit_tools import release_agent, spec, start_run
from tests.chat_server import (
    ECHO_TOOL,
    MESSAGES,
    ModelServer,
    Reply,
    Request,
    message,
    messages_server,
    serving,
    text,
    tool_use,
)
from tests.support import tools_release

KEY_VARIABLE = "TEST_ANTHROPIC_KEY"
KEY = "sk-ant-test-loopback"
OWNER = "test-owner"
model = functools.partial(chat_server.model, "anthropic", key_variable=KEY_VARIABLE)
complete = functools.partial(chat_server.complete, "anthropic", key_variable=KEY_VARIABLE)


@pytest.fixture
def api() -> Iterator[ModelServer]:
    with serving(messages_server()) as server:
        yield server


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-not-this-one")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    return KEY


def chat_tool_call(call_id: str, wire_name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": wire_name, "arguments": arguments}}


def sent_key(request: Request) -> str:
    """The API key a request carried: in ``x-api-key``, or as a bearer token (which this SDK release sends)."""
    return request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")


def error(status: int, kind: str, message: str) -> Reply:
    return chat_server.messages_error(status, kind, message)


# --- the provider -----------------------------------------------------------------------------------------------


def test_the_provider_is_registered_and_allowed_by_the_spec() -> None:
    from agents.spec import AGENT_SCHEMA

    assert isinstance(providers.get_provider("anthropic"), providers.AnthropicProvider)
    assert "anthropic" in AGENT_SCHEMA["properties"]["model"]["properties"]["provider"]["enum"]


def test_a_text_answer_comes_back_with_its_usage(api: ModelServer, api_key: str) -> None:
    api.replies = [message(text("Hello"), text(" there."), usage=(12, 4))]
    answer = complete(api)
    assert (answer.text, answer.tool_calls) == ("Hello there.", ())
    assert (answer.input_tokens, answer.output_tokens) == (12, 4)
    assert answer.message == {"role": "assistant", "content": "Hello there."}
    [request] = api.requests
    assert request.path == "/v1/messages"
    assert sent_key(request) == api_key
    assert "anthropic-version" in request.headers
    assert request.body == {
        "model": "test-model",
        "max_tokens": 1024,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": '{"text": "hi"}'}],
    }


def test_cached_input_tokens_count_as_input(api: ModelServer, api_key: str) -> None:
    api.replies = [message(text("ok"), usage=(10, 2), cache_creation_input_tokens=100, cache_read_input_tokens=50)]
    answer = complete(api)
    assert (answer.input_tokens, answer.output_tokens) == (160, 2)


def test_the_request_carries_system_tools_tool_results_and_the_parameters(api: ModelServer, api_key: str) -> None:
    api.replies = [message(text("ok"))]
    conversation = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": "Let me look.",
            "meta": {"script_position": 3},
            "tool_calls": [
                chat_tool_call("toolu_a", "unit__echo", '{"text": "a"}'),
                chat_tool_call("toolu_b", "unit__echo", '{"text": "b"}'),
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_a", "content": '{"echo": "a"}'},
        {"role": "tool", "tool_call_id": "toolu_b", "content": '{"error": "the agent has no grant"}'},
        {"role": "assistant", "content": None, "tool_calls": [chat_tool_call("toolu_c", "unit__echo", "{broken")]},
        {"role": "tool", "tool_call_id": "toolu_c", "content": '{"error": "not a JSON object"}'},
    ]
    complete(api, messages=conversation, tools=[ECHO_TOOL], parameters={"temperature": 0.2, "max_tokens": 64})
    [request] = api.requests
    assert request.body["system"] == "Be brief."
    assert request.body["tools"] == [
        {"name": "unit__echo", "description": ECHO_TOOL["description"], "input_schema": ECHO_TOOL["parameters"]}
    ]
    assert (request.body["max_tokens"], request.body["temperature"]) == (64, 0.2)
    assert request.body["messages"] == [
        {"role": "user", "content": '{"text": "hi"}'},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_a", "name": "unit__echo", "input": {"text": "a"}},
                {"type": "tool_use", "id": "toolu_b", "name": "unit__echo", "input": {"text": "b"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": '{"echo": "a"}'},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": '{"error": "the agent has no grant"}'},
            ],
        },
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_c", "name": "unit__echo", "input": {}}]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_c", "content": '{"error": "not a JSON object"}'},
            ],
        },
    ]


def test_a_tool_call_comes_back_under_its_dotted_name(api: ModelServer, api_key: str) -> None:
    api.replies = [message(text("Checking."), tool_use("toolu_a", "unit__echo", {"text": "hi"}))]
    answer = complete(api, tools=[ECHO_TOOL])
    assert answer.text == "Checking."
    assert answer.tool_calls == (
        providers.ToolCall(id="toolu_a", name="unit.echo", arguments={"text": "hi"}, raw_arguments='{"text": "hi"}'),
    )
    assert answer.message == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [chat_tool_call("toolu_a", "unit__echo", '{"text": "hi"}')],
    }


def test_a_tool_call_alone_has_no_content_and_input_that_is_not_an_object_comes_back_as_none(
    api: ModelServer, api_key: str
) -> None:
    api.replies = [message(tool_use("toolu_a", "unit__echo", {"text": "hi"}), tool_use("toolu_b", "unit__echo", [1]))]
    answer = complete(api, tools=[ECHO_TOOL])
    assert answer.text == ""
    assert [(call.id, call.arguments, call.raw_arguments) for call in answer.tool_calls] == [
        ("toolu_a", {"text": "hi"}, '{"text": "hi"}'),
        ("toolu_b", None, "[1]"),
    ]
    assert answer.message["content"] is None
    assert len(answer.message["tool_calls"]) == 2


def test_thinking_blocks_are_kept_and_sent_back_before_the_tool_calls(api: ModelServer, api_key: str) -> None:
    thinking = {"type": "thinking", "thinking": "Echo it.", "signature": "sig-1"}
    api.replies = [message(thinking, tool_use("toolu_a", "unit__echo", {"text": "hi"})), message(text("Done."))]
    first = complete(api, tools=[ECHO_TOOL])
    assert first.message["meta"] == {"anthropic_thinking": [thinking]}
    result = {"role": "tool", "tool_call_id": "toolu_a", "content": '{"echo": "hi"}'}
    complete(api, messages=[*MESSAGES, first.message, result], tools=[ECHO_TOOL])
    assert api.requests[1].body["messages"][1] == {
        "role": "assistant",
        "content": [thinking, {"type": "tool_use", "id": "toolu_a", "name": "unit__echo", "input": {"text": "hi"}}],
    }


@pytest.mark.parametrize(
    ("status", "kind", "error_type", "retryable"),
    [
        (429, "RateLimitError", "rate_limit_error", True),
        (500, "InternalServerError", "api_error", True),
        (503, "ServiceUnavailableError", "api_error", True),
        (529, "OverloadedError", "overloaded_error", True),
        (400, "BadRequestError", "invalid_request_error", False),
        (401, "AuthenticationError", "authentication_error", False),
        (404, "NotFoundError", "not_found_error", False),
    ],
)
def test_http_errors_are_retryable_only_when_a_retry_can_help(
    api: ModelServer, api_key: str, status: int, kind: str, error_type: str, retryable: bool
) -> None:
    api.replies = [error(status, error_type, f"status {status} from the test server")]
    with pytest.raises(providers.ProviderError) as failed:
        complete(api)
    assert failed.value.retryable is retryable
    assert str(failed.value).startswith(f"{kind}: ")
    assert f"status {status} from the test server" in str(failed.value)
    assert len(api.requests) == 1  # the SDK's own retries are off


def test_a_server_slower_than_the_timeout_is_a_retryable_error(api: ModelServer, api_key: str) -> None:
    api.replies = [Reply(body=message(text("late")).body, delay=1.0)]
    started = time.monotonic()
    with pytest.raises(providers.ProviderError, match=r"^APITimeoutError") as failed:
        complete(api, timeout=0.3)
    assert time.monotonic() - started < 0.9
    assert failed.value.retryable is True
    assert len(api.requests) == 1


def test_a_server_that_is_not_there_is_a_retryable_error(api: ModelServer, api_key: str) -> None:
    api.httpd.shutdown()
    api.httpd.server_close()
    with pytest.raises(providers.ProviderError, match=r"^APIConnectionError") as failed:
        complete(api)
    assert failed.value.retryable is True


def test_the_api_key_comes_from_the_variable_the_model_names(
    api: ModelServer, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.replies = [message(text("one")), message(text("two"))]
    monkeypatch.setenv("OTHER_ANTHROPIC_KEY", "sk-ant-other")
    complete(api, api_key_env="OTHER_ANTHROPIC_KEY")
    assert sent_key(api.requests[-1]) == "sk-ant-other"

    providers.AnthropicProvider().complete(
        model={"provider": "anthropic", "name": "test-model", "base_url": api.base_url},
        messages=MESSAGES,
        tools=[],
        timeout=5,
        script=[],
    )
    assert sent_key(api.requests[-1]) == "sk-ant-not-this-one"  # ANTHROPIC_API_KEY by default

    monkeypatch.delenv(KEY_VARIABLE)
    with pytest.raises(providers.ProviderError) as missing:
        complete(api)
    assert str(missing.value) == f"the environment variable {KEY_VARIABLE} (the API key) is not set"
    assert missing.value.retryable is False
    assert len(api.requests) == 2


def test_without_the_package_the_provider_says_how_to_install_it(
    api: ModelServer, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)  # makes `import anthropic` raise ImportError
    with pytest.raises(providers.ProviderError) as missing:
        complete(api)
    assert str(missing.value) == (
        "the anthropic provider needs the 'anthropic' package: pip install -r requirements-anthropic.txt"
    )
    assert missing.value.retryable is False
    assert api.requests == []


# --- a whole run ------------------------------------------------------------------------------------------------


@pytest.fixture
def committed(transactional_db: None, approver: User) -> None:
    """Committed data (tools run in a thread of their own), with the test tools released (``tools_release``)."""
    tools_release(approver)


def test_a_run_calls_a_tool_and_sends_its_result_back_to_the_model(
    committed: None,
    api: ModelServer,
    api_key: str,
    editor: User,
    approver: User,
    operator: User,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    api.replies = [
        message(tool_use("toolu_a", "unit__echo", {"text": "hi"}), usage=(20, 5)),
        message(text("The echo said hi."), usage=(30, 6)),
    ]
    agent_spec = spec(None, grants=[{"tool": "unit.echo"}], model=model(api, timeout_seconds=5))
    release_agent(editor, approver, "claude", agent_spec)
    started = start_run(django_capture_on_commit_callbacks, operator, "claude", {"text": "hi"})
    runtime.advance(started.pk, OWNER)
    run = Run.objects.get(pk=started.pk)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.result == {"answer": "The echo said hi."}
    assert run.tokens_used == 61
    [step] = run.steps.filter(kind=StepKind.TOOL_CALL)
    assert (step.call_id, step.status, step.result) == ("toolu_a", StepStatus.SUCCEEDED, {"echo": "hi"})

    first, second = api.requests
    assert first.body["system"] == "You are a unit-test agent."
    assert first.body["messages"] == [{"role": "user", "content": '{"text": "hi"}'}]
    assert [tool["name"] for tool in first.body["tools"]] == ["unit__echo"]
    assert "input_schema" in first.body["tools"][0]
    assert second.body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_a", "name": "unit__echo", "input": {"text": "hi"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_a", "content": '{"echo": "hi"}'}]},
    ]
