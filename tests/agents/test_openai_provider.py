"""The OpenAI-compatible provider against a real HTTP server on loopback speaking the Chat Completions protocol:
what it sends, how it reads answers and tool calls, which failures are worth a retry; then whole runs driven
in-process (``runtime.advance``) with such a model, including tool calls the runtime must refuse.
"""

import functools
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from agents import providers, runtime
from agents.models import Run, RunStatus, StepKind, StepStatus
from audit.models import AuditEvent
from tests import chat_server
from tests.agents.unit_tools import notes, release_agent, spec, start_run
from tests.chat_server import ECHO_TOOL, MESSAGES, ModelServer, Reply, completion
from tests.support import tools_release

KEY_VARIABLE = "TEST_LLM_KEY"
KEY = "sk-test-loopback"
OWNER = "test-owner"
model = functools.partial(chat_server.model, "openai", key_variable=KEY_VARIABLE)
complete = functools.partial(chat_server.complete, "openai", key_variable=KEY_VARIABLE)


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-this-one")
    return KEY


def tool_call(call_id: str, wire_name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": wire_name, "arguments": arguments}}


def error(status: int, message: str) -> Reply:
    return Reply(status, {"error": {"message": message, "type": "test_error", "code": None}})


# --- the provider -----------------------------------------------------------------------------------------------


def test_a_text_answer_comes_back_with_its_usage(chat: ModelServer, api_key: str) -> None:
    chat.replies = [completion("Hello there.", usage=(12, 4))]
    answer = complete(chat)
    assert (answer.text, answer.tool_calls) == ("Hello there.", ())
    assert (answer.input_tokens, answer.output_tokens) == (12, 4)
    assert answer.message == {"role": "assistant", "content": "Hello there."}
    [request] = chat.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {api_key}"
    assert request.body["model"] == "test-model"
    assert request.body["messages"] == MESSAGES
    assert "tools" not in request.body


def test_the_request_carries_wire_tool_names_the_parameters_and_no_private_fields(
    chat: ModelServer, api_key: str
) -> None:
    chat.replies = [completion("ok")]
    remembered = {"role": "assistant", "content": "earlier", "meta": {"script_position": 3}}
    complete(
        chat, messages=[*MESSAGES, remembered], tools=[ECHO_TOOL], parameters={"temperature": 0.2, "max_tokens": 64}
    )
    [request] = chat.requests
    assert request.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "unit__echo",
                "description": ECHO_TOOL["description"],
                "parameters": ECHO_TOOL["parameters"],
            },
        }
    ]
    assert (request.body["temperature"], request.body["max_tokens"]) == (0.2, 64)
    assert request.body["messages"][-1] == {"role": "assistant", "content": "earlier"}


def test_a_tool_call_comes_back_under_its_dotted_name(chat: ModelServer, api_key: str) -> None:
    chat.replies = [completion(tool_calls=[tool_call("call_a", "unit__echo", '{"text": "hi"}')])]
    answer = complete(chat, tools=[ECHO_TOOL])
    assert answer.text == ""
    assert answer.tool_calls == (
        providers.ToolCall(id="call_a", name="unit.echo", arguments={"text": "hi"}, raw_arguments='{"text": "hi"}'),
    )
    assert answer.message == {
        "role": "assistant",
        "content": None,
        "tool_calls": [tool_call("call_a", "unit__echo", '{"text": "hi"}')],
    }


def test_tool_call_arguments_that_are_not_a_json_object_come_back_as_none(chat: ModelServer, api_key: str) -> None:
    calls = [tool_call("call_a", "unit__echo", "{not json"), tool_call("call_b", "unit__echo", "[1, 2]")]
    chat.replies = [completion(tool_calls=calls)]
    answer = complete(chat, tools=[ECHO_TOOL])
    assert [(call.id, call.arguments, call.raw_arguments) for call in answer.tool_calls] == [
        ("call_a", None, "{not json"),
        ("call_b", None, "[1, 2]"),
    ]


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (429, "RateLimitError", True),
        (500, "InternalServerError", True),
        (503, "InternalServerError", True),
        (400, "BadRequestError", False),
        (401, "AuthenticationError", False),
    ],
)
def test_http_errors_are_retryable_only_when_a_retry_can_help(
    chat: ModelServer, api_key: str, status: int, kind: str, retryable: bool
) -> None:
    chat.replies = [error(status, f"status {status} from the test server")]
    with pytest.raises(providers.ProviderError) as failed:
        complete(chat)
    assert failed.value.retryable is retryable
    assert str(failed.value).startswith(f"{kind}: ")
    assert f"status {status} from the test server" in str(failed.value)
    assert len(chat.requests) == 1  # the SDK's own retries are off


def test_a_server_slower_than_the_timeout_is_a_retryable_error(chat: ModelServer, api_key: str) -> None:
    chat.replies = [Reply(body=completion("late").body, delay=1.0)]
    started = time.monotonic()
    with pytest.raises(providers.ProviderError, match=r"^APITimeoutError") as failed:
        complete(chat, timeout=0.3)
    assert time.monotonic() - started < 0.9
    assert failed.value.retryable is True


def test_a_server_that_is_not_there_is_a_retryable_error(chat: ModelServer, api_key: str) -> None:
    chat.httpd.shutdown()
    chat.httpd.server_close()
    with pytest.raises(providers.ProviderError, match=r"^APIConnectionError") as failed:
        complete(chat)
    assert failed.value.retryable is True


def test_the_api_key_comes_from_the_variable_the_model_names(
    chat: ModelServer, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat.replies = [completion("one"), completion("two")]
    monkeypatch.setenv("OTHER_LLM_KEY", "sk-other")
    complete(chat, api_key_env="OTHER_LLM_KEY")
    assert chat.requests[-1].headers["authorization"] == "Bearer sk-other"

    monkeypatch.delenv(KEY_VARIABLE)
    with pytest.raises(providers.ProviderError) as missing:
        complete(chat)
    assert str(missing.value) == f"the environment variable {KEY_VARIABLE} (the API key) is not set"
    assert missing.value.retryable is False
    assert len(chat.requests) == 1


# --- whole runs -------------------------------------------------------------------------------------------------


@pytest.fixture
def committed(transactional_db: None, approver: User) -> None:
    """Committed data (tools run in a thread of their own), with the test tools released (``tools_release``)."""
    tools_release(approver)


@pytest.fixture
def openai_run(
    committed: None,
    chat: ModelServer,
    api_key: str,
    editor: User,
    approver: User,
    operator: User,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> Callable[..., Run]:
    """Release an agent on the loopback model and run it in-process to the end."""

    def run(grants: list[dict[str, Any]], **model_extra: Any) -> Run:
        agent_spec = spec(None, grants=grants, model=model(chat, timeout_seconds=5, **model_extra))
        release_agent(editor, approver, "remote", agent_spec)
        started = start_run(django_capture_on_commit_callbacks, operator, "remote", {"text": "hi"})
        runtime.advance(started.pk, OWNER)
        return Run.objects.get(pk=started.pk)

    return run


def test_a_run_calls_a_tool_and_sends_its_result_back_to_the_model(
    chat: ModelServer, openai_run: Callable[..., Run]
) -> None:
    chat.replies = [
        completion(tool_calls=[tool_call("call_a", "unit__echo", '{"text": "hi"}')], usage=(20, 5)),
        completion("The echo said hi.", usage=(30, 6)),
    ]
    run = openai_run([{"tool": "unit.echo"}])
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.result == {"answer": "The echo said hi."}
    assert run.tokens_used == 61
    [step] = run.steps.filter(kind=StepKind.TOOL_CALL)
    assert (step.call_id, step.status, step.result) == ("call_a", StepStatus.SUCCEEDED, {"echo": "hi"})

    first, second = chat.requests
    assert first.body["messages"] == [
        {"role": "system", "content": "You are a unit-test agent."},
        {"role": "user", "content": '{"text": "hi"}'},
    ]
    assert [tool["function"]["name"] for tool in first.body["tools"]] == ["unit__echo"]
    assert second.body["messages"][2:] == [
        {"role": "assistant", "content": None, "tool_calls": [tool_call("call_a", "unit__echo", '{"text": "hi"}')]},
        {"role": "tool", "tool_call_id": "call_a", "content": '{"echo": "hi"}'},
    ]


def test_malformed_and_ungranted_tool_calls_are_denied_and_not_executed(
    chat: ModelServer, openai_run: Callable[..., Run]
) -> None:
    calls = [tool_call("call_a", "unit__echo", "{not json"), tool_call("call_b", "unit__note", '{"message": "x"}')]
    chat.replies = [completion(tool_calls=calls), completion("Nothing I could do.")]
    run = openai_run([{"tool": "unit.echo"}])
    assert run.status == RunStatus.SUCCEEDED, run.error
    malformed, ungranted = run.steps.filter(kind=StepKind.TOOL_CALL).order_by("seq")
    assert (malformed.status, malformed.error) == (StepStatus.DENIED, "the arguments were not a JSON object: {not json")
    assert (ungranted.status, ungranted.error) == (StepStatus.DENIED, "the agent has no grant for the tool 'unit.note'")
    assert notes() == []
    run_events = AuditEvent.objects.filter(correlation_id=run.correlation_id)
    assert run_events.filter(action="agent.tool.denied").count() == 2
    assert not run_events.filter(action="agent.tool.executing").exists()
    assert chat.requests[1].body["messages"][-2:] == [
        {"role": "tool", "tool_call_id": "call_a", "content": json.dumps({"error": malformed.error})},
        {"role": "tool", "tool_call_id": "call_b", "content": json.dumps({"error": ungranted.error})},
    ]


def test_a_model_that_keeps_failing_fails_the_run_after_its_retries(
    chat: ModelServer, openai_run: Callable[..., Run]
) -> None:
    run = openai_run([{"tool": "unit.echo"}], max_retries=2)
    assert len(chat.requests) == 3
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("openai model 'test-model' failed after 3 attempt(s): InternalServerError: ")
    assert "no reply scripted" in run.error
    [step] = run.steps.all()
    assert (step.kind, step.status, step.error) == (StepKind.ERROR, StepStatus.FAILED, run.error)
    [failed] = AuditEvent.objects.filter(correlation_id=run.correlation_id, action="agent.run.failed")
    assert failed.details["error"] == run.error


def test_a_model_error_that_a_retry_cannot_help_fails_the_run_at_once(
    chat: ModelServer, openai_run: Callable[..., Run]
) -> None:
    chat.fallback = error(401, "bad key")
    run = openai_run([{"tool": "unit.echo"}], max_retries=3)
    assert len(chat.requests) == 1
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("openai model 'test-model' failed after 1 attempt(s): AuthenticationError: ")
