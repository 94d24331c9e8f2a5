"""What an adversarial model server may send, end to end: the real SDKs against the loopback server
(``tests/chat_server.py``), runs advanced by the real runtime in-process, and one on the real Celery worker.

A reply the runtime cannot act on (``NaN``, ``1e400``, a 400-digit integer, arguments that are an object instead of
a string, negative usage, no message, a null function name, a NUL character) is refused: a failed ``llm_call``
step says why, nothing of it is done or stored, the model is told on its next call, and the run goes on within its
budgets. A body that is not JSON is a broken transport: retried as ``max_retries`` says, then the run fails with
the reason. ``agents/replies.py`` holds the checks.
"""

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from agents import providers, runtime, services
from agents.models import Run, RunStatus, StepKind, StepStatus
from audit.models import AuditEvent
from tests import chat_server
from tests.agents.unit_tools import notes, release_agent, spec, start_run
from tests.chat_server import ModelServer, Reply, completion, message, messages_server, serving, text, tool_use
from tests.support import tools_release, wait_for

KEY_VARIABLE = "TEST_ODD_KEY"
# The session's worker inherits this process's environment when it starts, after every module is collected: the key
# its runs read (any value: the loopback server takes any key).
WORKER_KEY_VARIABLE = "TEST_ODD_WORKER_KEY"
os.environ.setdefault(WORKER_KEY_VARIABLE, "sk-odd-worker")
OWNER = "test-owner"
NINES = "9" * 400


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VARIABLE, "sk-odd")


@pytest.fixture
def committed(transactional_db: None, approver: User) -> None:
    """Committed data (tools run in a thread of their own), with the test tools released (``tools_release``)."""
    tools_release(approver)


RunAgent = Callable[..., Run]


@pytest.fixture
def run_agent(
    committed: None,
    api_key: None,
    editor: User,
    approver: User,
    operator: User,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> RunAgent:
    """Release an agent on ``server`` (``provider``'s protocol) and run it in-process to the end."""

    def run(provider: str, server: ModelServer, *, budgets: dict[str, Any] | None = None, **model_extra: Any) -> Run:
        agent_model = chat_server.model(provider, server, key_variable=KEY_VARIABLE, timeout_seconds=5, **model_extra)
        agent_spec = spec(
            None, grants=[{"tool": "unit.echo"}, {"tool": "unit.note"}], model=agent_model, budgets=budgets
        )
        release_agent(editor, approver, "odd", agent_spec)
        started = start_run(django_capture_on_commit_callbacks, operator, "odd", {"text": "hi"})
        runtime.advance(started.pk, OWNER)
        return Run.objects.get(pk=started.pk)

    return run


def timeline(run: Run) -> list[tuple[str, str]]:
    return list(run.steps.order_by("seq").values_list("kind", "status"))


def refusal_told(request: chat_server.Request, reason: str) -> bool:
    """Whether ``request`` ends by telling the model its last reply was refused, and why."""
    last = request.body["messages"][-1]
    content = last["content"] if isinstance(last["content"], str) else last["content"][-1]["text"]
    return (
        last["role"] == "user"
        and "Your last reply was refused and nothing in it was done" in content
        and (reason in content)
    )


# --- Chat Completions -------------------------------------------------------------------------------------------


def raw_completion(message: str, usage: str = '{"prompt_tokens": 7, "completion_tokens": 3}') -> Reply:
    """A Chat Completions body written by hand: what ``json.dumps`` would never write."""
    body = (
        '{"id": "chatcmpl-odd", "object": "chat.completion", "created": 1700000000, "model": "test-model", '
        f'"choices": [{{"index": 0, "message": {message}, "finish_reason": "stop"}}], "usage": {usage}}}'
    )
    return Reply(raw=body.encode())


def raw_call(name: str, arguments: str) -> str:
    """An assistant message (JSON text) with one tool call; ``arguments`` is JSON text as it goes on the wire."""
    return (
        '{"role": "assistant", "content": null, "tool_calls": [{"id": "call_odd", "type": "function", '
        f'"function": {{"name": {name}, "arguments": {arguments}}}}}]}}'
    )


def note_arguments(value: str) -> str:
    """``unit.note``'s arguments holding ``value`` as a number, as the JSON string the protocol carries."""
    return json.dumps('{"message": "x", "extra": ' + value + "}")


ODD_CHAT_REPLIES = [
    pytest.param(
        raw_completion(raw_call('"unit__note"', note_arguments("NaN"))),
        "tool call 1 (unit__note): its arguments hold NaN, which JSON does not allow (at extra)",
        id="nan",
    ),
    pytest.param(
        raw_completion(raw_call('"unit__note"', note_arguments("1e400"))),
        "tool call 1 (unit__note): its arguments hold 1e400, beyond the range of a 64-bit float (at extra)",
        id="1e400",
    ),
    pytest.param(
        raw_completion(raw_call('"unit__note"', note_arguments(NINES))),
        "tool call 1 (unit__note): its arguments hold a 400-digit integer, beyond the ±9007199254740991 "
        "JSON carries exactly (at extra)",
        id="400-digits",
    ),
    pytest.param(
        raw_completion(raw_call('"unit__note"', '{"message": "x"}')),
        "tool call 1 (unit__note): its arguments are an object, not the string of JSON the protocol requires",
        id="arguments-an-object",
    ),
    pytest.param(
        raw_completion('{"role": "assistant", "content": "Done."}', '{"prompt_tokens": -7, "completion_tokens": 3}'),
        "usage.prompt_tokens is -7, not a whole number of tokens from 0 to 100000000",
        id="negative-usage",
    ),
    pytest.param(
        Reply(raw=b'{"id": "x", "object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop"}]}'),
        "the reply has no message (choices[0].message is missing or not an object)",
        id="no-message",
    ),
    pytest.param(
        raw_completion(raw_call("null", json.dumps('{"message": "x"}'))),
        "tool call 1 has no function name (null)",
        id="null-name",
    ),
    pytest.param(
        raw_completion(raw_call('"unit__note"', json.dumps('{"message": "\\ud800"}'))),
        "tool call 1 (unit__note): its arguments hold a NUL character or half a surrogate pair, which no database "
        "stores as text",
        id="lone-surrogate",
    ),
    pytest.param(
        raw_completion(
            '{"role": "assistant", "content": null, "tool_calls": ['
            + ", ".join(
                ['{"id": "call_1", "type": "function", "function": {"name": "unit__echo", "arguments": "{}"}}'] * 2
            )
            + "]}"
        ),
        "tool call 2 repeats the id 'call_1' of an earlier call",
        id="repeated-id",
    ),
    pytest.param(
        raw_completion(
            '{"role": "assistant", "content": null, "tool_calls": [{"id": "%s", "type": "function", '
            '"function": {"name": "unit__echo", "arguments": "{}"}}]}' % ("c" * 101)
        ),
        "tool call 1 has no id (a string of 1 to 100 characters)",
        id="id-too-long",
    ),
    pytest.param(
        raw_completion('{"role": "assistant", "content": "Done.\\u0000"}'),
        "the reply's fields hold a NUL character or half a surrogate pair, which no database stores as text",
        id="nul-character",
    ),
]


@pytest.mark.parametrize(("odd", "reason"), ODD_CHAT_REPLIES)
def test_an_odd_chat_reply_is_refused_recorded_and_told_and_the_run_goes_on(
    chat: ModelServer, run_agent: RunAgent, odd: Reply, reason: str
) -> None:
    chat.replies = [odd, completion("Fine, here it is.", usage=(20, 5))]
    run = run_agent("openai", chat)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.result == {"answer": "Fine, here it is."}
    assert timeline(run) == [
        (StepKind.LLM_CALL, StepStatus.FAILED),
        (StepKind.LLM_CALL, StepStatus.SUCCEEDED),
        (StepKind.MESSAGE, StepStatus.SUCCEEDED),
    ]
    refused = run.steps.get(seq=1)
    assert refused.error == f"reply refused: {reason}"
    assert refused.arguments is None
    assert refused.tokens > 0
    assert run.steps_used == 2
    assert run.tokens_used == refused.tokens + 25
    assert notes() == []  # nothing of the refused reply was done
    [event] = AuditEvent.objects.filter(correlation_id=run.correlation_id, action="agent.model.refused")
    assert event.details["reason"] == reason
    assert len(chat.requests) == 2
    assert refusal_told(chat.requests[1], reason)


def test_the_model_corrects_its_call_after_a_refusal_and_the_call_runs(chat: ModelServer, run_agent: RunAgent) -> None:
    chat.replies = [
        raw_completion(raw_call('"unit__echo"', json.dumps('{"text": NaN}'))),
        completion(
            tool_calls=[
                {"id": "call_b", "type": "function", "function": {"name": "unit__echo", "arguments": '{"text": "hi"}'}}
            ]
        ),
        completion("The echo said hi."),
    ]
    run = run_agent("openai", chat)

    assert run.status == RunStatus.SUCCEEDED, run.error
    [call] = run.steps.filter(kind=StepKind.TOOL_CALL)
    assert (call.call_id, call.status, call.arguments, call.result) == (
        "call_b",
        StepStatus.SUCCEEDED,
        {"text": "hi"},
        {"echo": "hi"},
    )
    second, third = chat.requests[1].body["messages"], chat.requests[2].body["messages"]
    assert second[-1]["role"] == "user"
    assert "NaN" in second[-1]["content"]
    assert third[2] == second[-1]  # the refusal stays in the conversation, the refused reply never does
    assert all("NaN" not in json.dumps(m.get("tool_calls")) for m in third)


def test_a_model_whose_replies_keep_being_refused_fails_the_run_saying_why(
    chat: ModelServer, run_agent: RunAgent
) -> None:
    chat.fallback = raw_completion(raw_call("null", '"{}"'))
    run = run_agent("openai", chat, max_retries=2)

    assert len(chat.requests) == 3
    assert run.status == RunStatus.FAILED
    assert run.error == (
        "openai model 'test-model': 3 replies in a row were refused; the last: tool call 1 has no function name (null)"
    )
    assert timeline(run) == [(StepKind.LLM_CALL, StepStatus.FAILED)] * 3 + [(StepKind.ERROR, StepStatus.FAILED)]
    assert all(refusal_told(request, "no function name") for request in chat.requests[1:])
    [failed] = AuditEvent.objects.filter(correlation_id=run.correlation_id, action="agent.run.failed")
    assert failed.details["error"] == run.error


def test_refused_replies_count_against_the_step_budget(chat: ModelServer, run_agent: RunAgent) -> None:
    chat.fallback = raw_completion(raw_call('"unit__echo"', json.dumps('{"text": Infinity}')))
    run = run_agent("openai", chat, max_retries=10, budgets={"steps": 2})

    assert len(chat.requests) == 2
    assert run.status == RunStatus.FAILED
    assert run.error == "Budget: the step budget (2) would be exceeded."
    assert timeline(run) == [(StepKind.LLM_CALL, StepStatus.FAILED)] * 2 + [(StepKind.ERROR, StepStatus.FAILED)]


def test_a_body_that_is_not_json_is_retried_then_fails_the_run_with_the_reason(
    chat: ModelServer, run_agent: RunAgent
) -> None:
    chat.fallback = Reply(raw=b"<html>upstream hiccup</html>", content_type="text/html")
    run = run_agent("openai", chat, max_retries=2)

    assert len(chat.requests) == 3
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("openai model 'test-model' failed after 3 attempt(s): the server's answer is not JSON")
    assert "<html>upstream hiccup</html>" in run.error
    assert timeline(run) == [(StepKind.ERROR, StepStatus.FAILED)]
    assert run.steps.get().error == run.error


def test_a_body_nested_too_deeply_to_read_is_a_broken_transport(chat: ModelServer, run_agent: RunAgent) -> None:
    chat.fallback = Reply(raw=b"[" * 100_000 + b"]" * 100_000)
    run = run_agent("openai", chat, max_retries=0)

    assert run.status == RunStatus.FAILED
    assert run.error.startswith(
        "openai model 'test-model' failed after 1 attempt(s): the server's answer is not JSON (nested too deeply)"
    )


def test_a_body_that_is_not_json_once_is_retried_inside_the_step(chat: ModelServer, run_agent: RunAgent) -> None:
    chat.replies = [Reply(raw=b'{"choices": [', content_type="application/json"), completion("Hello.")]
    run = run_agent("openai", chat, max_retries=1)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(chat.requests) == 2
    assert timeline(run) == [(StepKind.LLM_CALL, StepStatus.SUCCEEDED), (StepKind.MESSAGE, StepStatus.SUCCEEDED)]


def test_a_script_computing_infinity_is_a_failure_of_the_model() -> None:
    with pytest.raises(providers.ProviderError, match=r"^script entry 1: the arguments hold Infinity"):
        providers.ScriptedProvider().complete(
            model={"provider": "scripted", "name": "s"},
            messages=[{"role": "user", "content": "{}"}],
            tools=[],
            timeout=1,
            script=[{"call": "unit.echo", "arguments": {"text": "1.0 / 0.0"}}],
        )


# --- Messages (Anthropic) ---------------------------------------------------------------------------------------


def raw_message(content: str, usage: str = '{"input_tokens": 7, "output_tokens": 3}') -> Reply:
    body = (
        '{"id": "msg_odd", "type": "message", "role": "assistant", "model": "test-model", '
        f'"content": {content}, "stop_reason": "end_turn", "stop_sequence": null, "usage": {usage}}}'
    )
    return Reply(raw=body.encode())


def raw_tool_use(name: str, arguments: str) -> str:
    return f'[{{"type": "tool_use", "id": "toolu_odd", "name": {name}, "input": {arguments}}}]'


ODD_MESSAGES = [
    pytest.param(
        raw_message(raw_tool_use('"unit__note"', '{"message": "x", "extra": NaN}')),
        "tool call 1 (unit__note): its arguments hold NaN, which JSON does not allow (at extra)",
        id="nan",
    ),
    pytest.param(
        raw_message(raw_tool_use('"unit__note"', '{"message": "x", "extra": -1e400}')),
        "tool call 1 (unit__note): its arguments hold -1e400, beyond the range of a 64-bit float (at extra)",
        id="1e400",
    ),
    pytest.param(
        raw_message(raw_tool_use('"unit__note"', '{"message": "x", "extra": ' + NINES + "}")),
        "tool call 1 (unit__note): its arguments hold a 400-digit integer, beyond the ±9007199254740991 "
        "JSON carries exactly (at extra)",
        id="400-digits",
    ),
    pytest.param(
        raw_message('[{"type": "text", "text": "Done."}]', '{"input_tokens": 7, "output_tokens": -3}'),
        "usage.output_tokens is -3, not a whole number of tokens from 0 to 100000000",
        id="negative-usage",
    ),
    pytest.param(
        Reply(
            raw=b'{"id": "msg_odd", "type": "message", "role": "assistant", "usage": {"input_tokens": 1, '
            b'"output_tokens": 1}}'
        ),
        "the reply has no content (a list of blocks)",
        id="no-content",
    ),
    pytest.param(
        raw_message(raw_tool_use("null", '{"message": "x"}')), "tool call 1 has no function name (null)", id="null-name"
    ),
]


@pytest.fixture
def messages_api() -> Iterator[ModelServer]:
    with serving(messages_server()) as server:
        yield server


@pytest.mark.parametrize(("odd", "reason"), ODD_MESSAGES)
def test_an_odd_anthropic_reply_is_refused_recorded_and_told_and_the_run_goes_on(
    messages_api: ModelServer, run_agent: RunAgent, odd: Reply, reason: str
) -> None:
    messages_api.replies = [odd, message(text("Fine, here it is."))]
    run = run_agent("anthropic", messages_api)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert timeline(run) == [
        (StepKind.LLM_CALL, StepStatus.FAILED),
        (StepKind.LLM_CALL, StepStatus.SUCCEEDED),
        (StepKind.MESSAGE, StepStatus.SUCCEEDED),
    ]
    assert run.steps.get(seq=1).error == f"reply refused: {reason}"
    assert notes() == []
    assert AuditEvent.objects.filter(correlation_id=run.correlation_id, action="agent.model.refused").count() == 1
    second = messages_api.requests[1]
    assert refusal_told(second, reason)
    assert second.body["messages"][-1]["content"][0] == {"type": "text", "text": '{"text": "hi"}'}  # one user turn


def test_an_anthropic_body_that_is_not_json_is_retried_then_fails_the_run(
    messages_api: ModelServer, run_agent: RunAgent
) -> None:
    messages_api.fallback = Reply(raw=b"not json at all")
    run = run_agent("anthropic", messages_api, max_retries=1)

    assert len(messages_api.requests) == 2
    assert run.status == RunStatus.FAILED
    assert run.error.startswith(
        "anthropic model 'test-model' failed after 2 attempt(s): the server's answer is not JSON"
    )


def test_a_sound_anthropic_tool_call_still_runs(messages_api: ModelServer, run_agent: RunAgent) -> None:
    messages_api.replies = [message(tool_use("toolu_a", "unit__note", {"message": "kept"})), message(text("Noted."))]
    run = run_agent("anthropic", messages_api)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert notes() == ["kept"]


# --- on the real worker -----------------------------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.usefixtures("celery_worker")
@pytest.mark.django_db(transaction=True)
def test_on_the_worker_a_refused_reply_is_one_step_not_a_crash_loop(
    chat: ModelServer, editor: User, approver: User, operator: User
) -> None:
    chat.replies = [
        raw_completion(raw_call('"inventory__check_stock"', '{"sku": "SKU-123"}')),
        completion("I will not guess a SKU."),
    ]
    agent_model = chat_server.model("openai", chat, key_variable=WORKER_KEY_VARIABLE, timeout_seconds=5)
    agent_spec = spec(None, grants=[{"tool": "inventory.check_stock"}], model=agent_model)
    tools_release(approver)
    release_agent(editor, approver, "odd-worker", agent_spec)
    with transaction.atomic():
        started, _ = services.run_start(actor=operator, agent="odd-worker", input={"text": "hi"})

    run = wait_for(
        lambda: Run.objects.filter(pk=started.pk, status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED]).first(),
        message="the run to finish on the worker",
    )
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.deliveries == 0
    assert len(chat.requests) == 2
    assert timeline(run) == [
        (StepKind.LLM_CALL, StepStatus.FAILED),
        (StepKind.LLM_CALL, StepStatus.SUCCEEDED),
        (StepKind.MESSAGE, StepStatus.SUCCEEDED),
    ]
    assert run.steps.get(seq=1).error == (
        "reply refused: tool call 1 (inventory__check_stock): its arguments are an object, not the string of JSON "
        "the protocol requires"
    )
    events = AuditEvent.objects.filter(correlation_id=run.correlation_id).order_by("sequence")
    trail = list(events.values_list("action", flat=True))
    assert trail.count("agent.model.refused") == 1
    assert trail[-1] == "agent.run.succeeded"
