"""The ``openai`` provider: the official SDK against any server speaking the Chat Completions protocol."""

import functools
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
    estimate_tokens,
    json_body,
    raw_body,
    tool_name,
    wire_call,
    wire_name,
)


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
        self,
        *,
        model: Mapping[str, Any],
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]],
        timeout: float,
        script: Sequence[Mapping[str, Any]],
    ) -> Completion:
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
            {
                "type": "function",
                "function": {
                    "name": wire_name(t["name"]),
                    "description": t["description"],
                    "parameters": t["parameters"],
                },
            }
            for t in tools
        ]
        request: dict[str, Any] = {"model": model["name"], "messages": wire_messages, **(model.get("parameters") or {})}
        if wire_tools:
            request["tools"] = wire_tools
        raw = raw_body(
            openai,
            openai.OpenAIError,
            lambda: client.chat.completions.with_raw_response.create(**request, timeout=timeout),
        )
        body = json_body(raw)
        if not (isinstance(body, dict) and body.get("choices")):
            raise ProviderError("the model returned no choices", retryable=True)
        problem = replies.chat_completion_problem(body)
        if problem:
            raise ReplyRefused.estimated(problem, raw, wire_messages)
        return _openai_completion(body, wire_messages)


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
        wire_calls.append(wire_call(call["id"], function["name"], raw))
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
