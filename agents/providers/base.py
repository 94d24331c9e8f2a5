"""What every provider shares: the answer's shape, the errors, tool names on the wire, reading a raw body."""

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agents import replies


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
        self,
        *,
        model: Mapping[str, Any],
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]],
        timeout: float,
        script: Sequence[Mapping[str, Any]],
    ) -> Completion: ...


def wire_name(tool_name: str) -> str:
    return tool_name.replace(".", "__")


def tool_name(wire: str) -> str:
    return wire.replace("__", ".")


def estimate_tokens(text: str) -> int:
    """A rough count (4 characters a token), for budgets before a call and for the scripted provider."""
    return max(1, (len(text) + 3) // 4)


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def raw_body(sdk: Any, base_error: type[Exception], send: Callable[[], Any]) -> bytes:
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


def wire_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A tool call as the assistant message sent back to the model carries it (the Chat Completions shape)."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def json_body(raw: bytes) -> Any:
    """The answer's body as JSON (see ``agents.replies.loads``); one that is not JSON is a broken transport, worth a
    retry."""
    try:
        return replies.loads(raw)
    except ValueError as error:
        excerpt = raw[:200].decode("utf-8", "replace")
        raise ProviderError(f"the server's answer is not JSON ({error}): {excerpt!r}", retryable=True) from error
