"""LLM providers behind one interface: messages and tool schemas in; text and/or tool calls and token usage out.

* ``scripted``: deterministic and offline. The agent version's ``script`` is a list of entries, each a tool
  ``call`` (arguments are CEL expressions) or an ``answer`` (a template whose ``{{ ... }}`` parts are CEL), with an
  optional ``when`` condition. Expressions see ``input`` (the run's input), ``results`` (every tool result so far,
  in order; a denied or failed call gives ``{"error": ...}``), ``last`` (the latest result, or null) and ``memory``
  (what the run remembers of earlier runs: ``{"run", "finished_at", "input", "answer"}`` each, newest first). Each call
  takes the next entry whose ``when`` holds; where it is in the script travels in the assistant message.
* ``openai``: the official SDK against any server speaking the Chat Completions protocol (OpenAI, Azure OpenAI,
  vLLM, Ollama, llama.cpp server), by ``base_url`` and a key read from the environment variable the model names.
* ``anthropic``: the official ``anthropic`` SDK (an optional dependency: ``requirements-anthropic.txt``) against
  the Messages API; the Chat Completions-shaped conversation is converted on the way out and the answer back.

Messages use the Chat Completions shape. Tool names travel with ``.`` written as ``__`` (the protocol allows only
letters, digits, ``_`` and ``-``). A provider raises ``ProviderError`` (``retryable`` for timeouts, rate limits,
server errors and a body that is not JSON) and never anything else; ``ReplyRefused``, one of them, when the model
answered in a shape nothing may act on (``agents.replies``: odd numbers, missing fields, wrong types).
"""

import functools
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agents import model_access, replies
from governance.policies import ConditionError, ConditionRuntimeError, compile_condition


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any] | None  # None when the model's arguments were not a JSON object
    raw_arguments: str = ""


@dataclass(frozen=True)
class Completion:
    text: str
    tool_calls: tuple[ToolCall, ...]
    input_tokens: int
    output_tokens: int
    message: dict[str, Any]  # the assistant message to send back to the model next time
    meta: dict[str, Any] = field(default_factory=dict)


class ProviderError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ReplyRefused(ProviderError):
    """The model answered, but in a shape nothing may act on or store (``agents.replies`` says why). Not retried as
    it is: the runtime records the refusal as a step and tells the model on its next call."""

    def __init__(self, reason: str, *, excerpt: str, input_tokens: int, output_tokens: int) -> None:
        super().__init__(reason, retryable=False)
        self.excerpt, self.input_tokens, self.output_tokens = excerpt, input_tokens, output_tokens

    @classmethod
    def estimated(cls, reason: str, raw: bytes, request: Any) -> "ReplyRefused":
        """A refusal whose usage is estimated from the request and the body (the reported usage may be what is
        wrong)."""
        text = raw.decode("utf-8", "replace").replace("\x00", "\ufffd")
        return cls(
            reason,
            excerpt=text[:2000],
            input_tokens=estimate_tokens(json.dumps(request)),
            output_tokens=estimate_tokens(text),
        )


class Provider(Protocol):
    def complete(
        self, *, model: Mapping[str, Any], messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]],
        timeout: float, script: Sequence[Mapping[str, Any]],
    ) -> Completion: ...  # fmt: skip


def wire_name(tool_name: str) -> str:
    return tool_name.replace(".", "__")


def tool_name(wire: str) -> str:
    return wire.replace("__", ".")


def estimate_tokens(text: str) -> int:
    """A rough count (4 characters a token), for budgets before a call and for the scripted provider."""
    return max(1, (len(text) + 3) // 4)


# --- scripted -------------------------------------------------------------------------------------------------

_EXPRESSION = re.compile(r"\{\{\s*(.+?)\s*\}\}")


class ScriptedProvider:
    """See the module docstring. Usage is estimated from the text, so budgets work as with a real model."""

    def complete(
        self, *, model: Mapping[str, Any], messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]],
        timeout: float, script: Sequence[Mapping[str, Any]],
    ) -> Completion:  # fmt: skip
        position = 0
        for message in messages:
            if message.get("role") == "assistant":
                position = int((message.get("meta") or {}).get("script_position", position))
        user = next((m for m in messages if m.get("role") == "user"), {"content": "{}"})
        try:
            run_input = json.loads(user.get("content") or "{}")
        except ValueError:
            run_input = {"text": user.get("content")}
        results = [json.loads(m["content"]) for m in messages if m.get("role") == "tool"]
        memory: list[Any] = next((m["meta"]["memory"] for m in messages if "memory" in (m.get("meta") or {})), [])
        facts = {"input": run_input, "results": results, "last": results[-1] if results else None, "memory": memory}
        prompt_tokens = estimate_tokens(json.dumps(list(messages)))
        while position < len(script):
            entry = script[position]
            position += 1
            try:
                if "when" in entry and not _truth(entry["when"], facts):
                    continue
                if "call" in entry:
                    arguments = {name: _value(expr, facts) for name, expr in (entry.get("arguments") or {}).items()}
                    _check_script_arguments(arguments, position)
                    call = ToolCall(id=f"call_{position}", name=entry["call"], arguments=arguments,
                                    raw_arguments=json.dumps(arguments))  # fmt: skip
                    message = {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"id": call.id, "type": "function",
                                        "function": {"name": wire_name(call.name), "arguments": call.raw_arguments}}],
                        "meta": {"script_position": position},
                    }  # fmt: skip
                    return Completion("", (call,), prompt_tokens, estimate_tokens(call.raw_arguments), message)
                text = _EXPRESSION.sub(lambda match: _text(_value(match.group(1), facts)), str(entry["answer"]))
            except (ConditionError, ConditionRuntimeError) as error:
                raise ProviderError(f"script entry {position}: {error}", retryable=False) from error
            message = {"role": "assistant", "content": text, "meta": {"script_position": position}}
            return Completion(text, (), prompt_tokens, estimate_tokens(text), message)
        raise ProviderError("the script ran out of entries without an answer", retryable=False)


def _check_script_arguments(arguments: dict[str, Any], position: int) -> None:
    """What a script computed must be storable like any model's arguments (a deterministic script would only
    compute it again: the run fails)."""
    problem = replies.unstorable_text_problem(arguments, "the arguments") or replies.odd_number_problem(
        arguments, "the arguments"
    )
    if problem:
        raise ProviderError(f"script entry {position}: {problem}", retryable=False)


def _truth(expression: str, facts: Mapping[str, Any]) -> bool:
    return compile_condition(expression).evaluate(facts)


def _value(expression: str, facts: Mapping[str, Any]) -> Any:
    return compile_condition(expression).value(facts)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# --- OpenAI-compatible ----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _openai_client(api_key: str, base_url: str | None) -> Any:
    """One client (and its connection pool) per server and key, per process: building one reloads the TLS
    certificates, about 40 ms. The timeout is given per request."""
    import openai

    return openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0)


class OpenAIProvider:
    """Chat Completions through the official ``openai`` SDK; the SDK's own retries are off (the runtime retries
    inside the run's budget). The body is read raw and checked by ``agents.replies``, never trusted to the SDK's
    lenient parsing."""

    def complete(
        self, *, model: Mapping[str, Any], messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]],
        timeout: float, script: Sequence[Mapping[str, Any]],
    ) -> Completion:  # fmt: skip
        import openai

        key_variable = model_access.key_variable(model)
        if refused := model_access.refusal(model):
            raise ProviderError(refused, retryable=False)
        api_key = os.environ.get(key_variable)
        if not api_key:
            raise ProviderError(f"the environment variable {key_variable} (the API key) is not set", retryable=False)
        client = _openai_client(api_key, model.get("base_url") or None)
        wire_messages = [{key: value for key, value in m.items() if key != "meta"} for m in messages]
        wire_tools = [
            {"type": "function", "function": {"name": wire_name(t["name"]), "description": t["description"],
                                              "parameters": t["parameters"]}}
            for t in tools
        ]  # fmt: skip
        request: dict[str, Any] = {"model": model["name"], "messages": wire_messages, **(model.get("parameters") or {})}
        if wire_tools:
            request["tools"] = wire_tools
        raw = _raw_body(
            openai,
            openai.OpenAIError,
            lambda: client.chat.completions.with_raw_response.create(**request, timeout=timeout),
        )
        body = _json_body(raw)
        if not (isinstance(body, dict) and body.get("choices")):
            raise ProviderError("the model returned no choices", retryable=True)
        problem = replies.chat_completion_problem(body)
        if problem:
            raise ReplyRefused.estimated(problem, raw, wire_messages)
        return _openai_completion(body, wire_messages)


def _raw_body(sdk: Any, base_error: type[Exception], send: Callable[[], Any]) -> bytes:
    """The raw body of the answer ``send`` gets through an official SDK (``openai`` or ``anthropic``, whose errors
    have the same names); ``ProviderError`` for what the SDK says went wrong, retryable when trying again may help."""
    try:
        return bytes(send().http_response.content)
    except (sdk.APITimeoutError, sdk.APIConnectionError, sdk.RateLimitError, sdk.InternalServerError) as error:
        raise ProviderError(f"{type(error).__name__}: {error}", retryable=True) from error
    except sdk.APIStatusError as error:
        raise ProviderError(f"{type(error).__name__}: {error}", retryable=error.status_code >= 500) from error
    except base_error as error:
        raise ProviderError(f"{type(error).__name__}: {error}", retryable=False) from error


def _openai_completion(body: dict[str, Any], wire_messages: list[dict[str, Any]]) -> Completion:
    """A Chat Completions body ``agents.replies`` found sound, as a ``Completion``."""
    choice = replies.chat_message(body)
    calls = []
    wire_calls = []
    for call in choice.get("tool_calls") or []:
        function = call["function"]
        raw = function["arguments"]
        arguments, _ = replies.arguments(raw)
        calls.append(ToolCall(id=call["id"], name=tool_name(function["name"]), arguments=arguments, raw_arguments=raw))
        wire_calls.append(_wire_call(call["id"], function["name"], raw))
    content = choice.get("content")
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if wire_calls:
        message["tool_calls"] = wire_calls
    usage = body.get("usage")
    return Completion(
        text=content or "",
        tool_calls=tuple(calls),
        input_tokens=usage["prompt_tokens"] if usage else estimate_tokens(json.dumps(wire_messages)),
        output_tokens=usage["completion_tokens"] if usage else estimate_tokens(content or ""),
        message=message,
    )


def _wire_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A tool call as the assistant message sent back to the model carries it (the Chat Completions shape)."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _json_body(raw: bytes) -> Any:
    """The answer's body as JSON (see ``agents.replies.loads``); one that is not JSON is a broken transport, worth a
    retry."""
    try:
        return replies.loads(raw)
    except ValueError as error:
        excerpt = raw[:200].decode("utf-8", "replace")
        raise ProviderError(f"the server's answer is not JSON ({error}): {excerpt!r}", retryable=True) from error


# --- Anthropic -------------------------------------------------------------------------------------------------

ANTHROPIC_MISSING = "the anthropic provider needs the 'anthropic' package: pip install -r requirements-anthropic.txt"
ANTHROPIC_MAX_TOKENS = 1024  # the Messages API requires max_tokens; parameters.max_tokens overrides it
ANTHROPIC_INPUT_USAGE = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class AnthropicProvider:
    """The Messages API through the official ``anthropic`` SDK, imported only when a model uses it (the package is
    optional). The conversation stays in the Chat Completions shape everywhere else: the system message becomes
    ``system``, an assistant's tool calls ``tool_use`` blocks, consecutive tool results one user message of
    ``tool_result`` blocks; the answer comes back as an assistant message of that shape, with any thinking
    blocks kept in its ``meta`` so they can be sent back verbatim, as the API requires during tool use. The SDK's
    own retries are off (the runtime retries inside the run's budget)."""

    def complete(
        self, *, model: Mapping[str, Any], messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]],
        timeout: float, script: Sequence[Mapping[str, Any]],
    ) -> Completion:  # fmt: skip
        try:
            import anthropic
        except ImportError as error:
            raise ProviderError(ANTHROPIC_MISSING, retryable=False) from error

        key_variable = model_access.key_variable(model)
        if refused := model_access.refusal(model):
            raise ProviderError(refused, retryable=False)
        api_key = os.environ.get(key_variable)
        if not api_key:
            raise ProviderError(f"the environment variable {key_variable} (the API key) is not set", retryable=False)
        client = anthropic.Anthropic(
            api_key=api_key, base_url=model.get("base_url") or None, max_retries=0, timeout=timeout
        )
        system, wire_messages = anthropic_messages(messages)
        parameters = dict(model.get("parameters") or {})
        request: dict[str, Any] = {
            "model": model["name"],
            "max_tokens": int(parameters.pop("max_tokens", ANTHROPIC_MAX_TOKENS)),
            "messages": wire_messages,
        }
        if system:
            request["system"] = system
        if tools:
            request["tools"] = [
                {"name": wire_name(t["name"]), "description": t["description"], "input_schema": t["parameters"]}
                for t in tools
            ]
        if parameters:
            request["extra_body"] = parameters  # sent as they are: temperature, top_p, stop_sequences, thinking, ...
        raw = _raw_body(
            anthropic, anthropic.AnthropicError, lambda: client.messages.with_raw_response.create(**request)
        )
        body = _json_body(raw)
        problem = replies.anthropic_message_problem(body)
        if problem:
            raise ReplyRefused.estimated(problem, raw, [system, wire_messages])
        return _anthropic_completion(body, system, wire_messages)


def _anthropic_completion(body: dict[str, Any], system: str, wire_messages: list[dict[str, Any]]) -> Completion:
    """A Messages body ``agents.replies`` found sound, as a ``Completion`` in the Chat Completions shape."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    wire_calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    for block in body["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use":
            value = block.get("input")
            raw = json.dumps(value)
            arguments = value if isinstance(value, dict) else None
            call_id, name = block["id"], block["name"]
            calls.append(ToolCall(id=call_id, name=tool_name(name), arguments=arguments, raw_arguments=raw))
            wire_calls.append(_wire_call(call_id, name, raw))
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(block)
    text = "".join(texts)
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if wire_calls else "")}
    if wire_calls:
        message["tool_calls"] = wire_calls
    if thinking:
        message["meta"] = {"anthropic_thinking": thinking}
    usage = body.get("usage")
    if usage is None:
        input_tokens = estimate_tokens(json.dumps([system, wire_messages]))
        output_tokens = estimate_tokens(text + "".join(call.raw_arguments for call in calls))
    else:
        input_tokens = sum(usage.get(name) or 0 for name in ANTHROPIC_INPUT_USAGE)
        output_tokens = usage["output_tokens"]
    return Completion(
        text=text, tool_calls=tuple(calls), input_tokens=input_tokens, output_tokens=output_tokens, message=message
    )


def anthropic_messages(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Chat Completions-shaped messages as the Messages API's ``system`` and ``messages``."""
    system: list[str] = []
    wire: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "system":
            system.append(_text(message.get("content") or ""))
        elif role == "tool":
            result = {"type": "tool_result", "tool_use_id": message.get("tool_call_id", ""),
                      "content": _text(message.get("content") or "")}  # fmt: skip
            previous = wire[-1] if wire else None
            if previous and previous["role"] == "user" and isinstance(previous["content"], list):
                previous["content"].append(result)  # consecutive tool results travel in one user message
            else:
                wire.append({"role": "user", "content": [result]})
        elif role == "assistant":
            blocks: list[dict[str, Any]] = list((message.get("meta") or {}).get("anthropic_thinking") or [])
            if message.get("content"):
                blocks.append({"type": "text", "text": _text(message["content"])})
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    arguments = None
                blocks.append({"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", ""),
                               "input": arguments if isinstance(arguments, dict) else {}})  # fmt: skip
            if blocks:
                wire.append({"role": "assistant", "content": blocks})
        else:
            _user_text(wire, _text(message.get("content") or ""))
    return "\n\n".join(part for part in system if part), wire


def _user_text(wire: list[dict[str, Any]], text: str) -> None:
    """A user message's text; after another user message (the input, tool results) it joins that message, so that
    user and assistant turns alternate as the Messages API expects."""
    previous = wire[-1] if wire else None
    if previous is None or previous["role"] != "user":
        wire.append({"role": "user", "content": text})
    elif isinstance(previous["content"], list):
        previous["content"].append({"type": "text", "text": text})
    else:
        previous["content"] = [{"type": "text", "text": previous["content"]}, {"type": "text", "text": text}]


PROVIDERS: dict[str, Provider] = {
    "scripted": ScriptedProvider(),
    "openai": OpenAIProvider(),
    "anthropic": AnthropicProvider(),
}


def get_provider(name: str) -> Provider:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ProviderError(f"there is no LLM provider {name!r}", retryable=False) from None
