"""A real HTTP server on loopback speaking a model API (the Chat Completions protocol, or Anthropic's Messages
protocol), for the tests of everything that calls a model (agent runs, persona phrasing), and
what the provider tests send it (``MESSAGES``, ``ECHO_TOOL``, ``model``, ``complete``). No network is used."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agents import providers


@dataclass
class Reply:
    """An answer of the server: ``body`` as JSON, or ``raw`` bytes sent exactly as they are (what a JSON encoder
    would never write: ``NaN``, ``1e400``, a body that is not JSON at all)."""

    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None
    content_type: str = "application/json"


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class ModelServer:
    """A model API on loopback: ``POST <route>`` answered with the scripted ``replies`` in order (then
    ``fallback``); every request is recorded. ``base_url`` is what an SDK is given."""

    def __init__(self, route: str, fallback: Reply, not_found: Callable[[str], Reply], base_path: str = "") -> None:
        self.route, self.base_path = route, base_path
        self.replies: list[Reply] = []
        self.fallback = fallback
        self.requests: list[Request] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if self.path != server.route:
                    reply = not_found(self.path)
                else:
                    reply = server.replies.pop(0) if server.replies else server.fallback
                time.sleep(reply.delay)
                data = json.dumps(reply.body).encode() if reply.raw is None else reply.raw
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{self.base_path}"


@contextmanager
def serving(server: ModelServer) -> Iterator[ModelServer]:
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def chat_server() -> ModelServer:
    """The Chat Completions protocol: ``POST /v1/chat/completions``, SDK base URL ``…/v1``."""
    return ModelServer(
        "/v1/chat/completions",
        Reply(500, {"error": {"message": "no reply scripted", "type": "server_error"}}),
        lambda path: Reply(404, {"error": {"message": f"no route {path}"}}),
        base_path="/v1",
    )


@pytest.fixture
def chat() -> Iterator[ModelServer]:
    with serving(chat_server()) as server:
        yield server


def completion(
    content: str | None = None, tool_calls: list[dict[str, Any]] | None = None, usage: tuple[int, int] | None = (7, 3)
) -> Reply:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    body: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "test-model",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
    }
    if usage:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return Reply(body=body)


def messages_error(status: int, kind: str, message: str) -> Reply:
    """An error of the Messages protocol."""
    return Reply(status, {"type": "error", "error": {"type": kind, "message": message}})


def messages_server() -> ModelServer:
    """The Messages protocol (Anthropic's): ``POST /v1/messages``, SDK base URL the server's root."""
    return ModelServer(
        "/v1/messages",
        messages_error(500, "api_error", "no reply scripted"),
        lambda path: messages_error(404, "not_found_error", f"no route {path}"),
    )


def message(*content: dict[str, Any], usage: tuple[int, int] = (7, 3), **usage_extra: int) -> Reply:
    """A Messages reply of these content blocks."""
    calls = any(block["type"] == "tool_use" for block in content)
    usage_body = {"input_tokens": usage[0], "output_tokens": usage[1], **usage_extra}
    return Reply(
        body={
            "id": "msg_test",
            "type": "message",
            "role": "assistant",
            "model": "test-model",
            "content": list(content),
            "stop_reason": "tool_use" if calls else "end_turn",
            "stop_sequence": None,
            "usage": usage_body,
        }
    )


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


# --- what the provider tests send -----------------------------------------------------------------------------------

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": '{"text": "hi"}'},
]
ECHO_TOOL: dict[str, Any] = {
    "name": "unit.echo",
    "description": "Say the text back.",
    "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}


def model(provider: str, server: ModelServer, *, key_variable: str, **extra: Any) -> dict[str, Any]:
    """An agent version's ``model`` for ``provider`` against ``server``, its key read from ``key_variable``."""
    return {
        "provider": provider,
        "name": "test-model",
        "base_url": server.base_url,
        "api_key_env": key_variable,
        **extra,
    }


def complete(
    provider: str,
    server: ModelServer,
    *,
    key_variable: str,
    messages: list[dict[str, Any]] = MESSAGES,
    tools: list[dict[str, Any]] | None = None,
    timeout: float = 5,
    **extra: Any,
) -> providers.Completion:
    """One call of ``provider`` against ``server``, as the runtime makes it."""
    return providers.get_provider(provider).complete(
        model=model(provider, server, key_variable=key_variable, **extra),
        messages=messages,
        tools=tools or [],
        timeout=timeout,
        script=[],
    )
