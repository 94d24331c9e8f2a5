"""The ``anthropic`` provider: the official SDK (optional) against the Messages API."""

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from agents import model_access, replies
from agents.providers.base import (
    Completion,
    ProviderError,
    ReplyRefused,
    ToolCall,
    as_text,
    estimate_tokens,
    json_body,
    raw_body,
    tool_name,
    wire_call,
    wire_name,
)

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
        self,
        *,
        model: Mapping[str, Any],
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]],
        timeout: float,
        script: Sequence[Mapping[str, Any]],
    ) -> Completion:
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
        raw = raw_body(anthropic, anthropic.AnthropicError, lambda: client.messages.with_raw_response.create(**request))
        body = json_body(raw)
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
            wire_calls.append(wire_call(call_id, name, raw))
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
            system.append(as_text(message.get("content") or ""))
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id", ""),
                "content": as_text(message.get("content") or ""),
            }
            previous = wire[-1] if wire else None
            if previous and previous["role"] == "user" and isinstance(previous["content"], list):
                previous["content"].append(result)  # consecutive tool results travel in one user message
            else:
                wire.append({"role": "user", "content": [result]})
        elif role == "assistant":
            blocks: list[dict[str, Any]] = list((message.get("meta") or {}).get("anthropic_thinking") or [])
            if message.get("content"):
                blocks.append({"type": "text", "text": as_text(message["content"])})
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    arguments = None
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": function.get("name", ""),
                        "input": arguments if isinstance(arguments, dict) else {},
                    }
                )
            if blocks:
                wire.append({"role": "assistant", "content": blocks})
        else:
            _useras_text(wire, as_text(message.get("content") or ""))
    return "\n\n".join(part for part in system if part), wire


def _useras_text(wire: list[dict[str, Any]], text: str) -> None:
    """A user message's text; after another user message (the input, tool results) it joins that message, so that
    user and assistant turns alternate as the Messages API expects."""
    previous = wire[-1] if wire else None
    if previous is None or previous["role"] != "user":
        wire.append({"role": "user", "content": text})
    elif isinstance(previous["content"], list):
        previous["content"].append({"type": "text", "text": text})
    else:
        previous["content"] = [{"type": "text", "text": previous["content"]}, {"type": "text", "text": text}]
