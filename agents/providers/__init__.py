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

from agents.providers.anthropic_api import AnthropicProvider, anthropic_messages
from agents.providers.base import (
    Completion,
    Provider,
    ProviderError,
    ReplyRefused,
    ToolCall,
    estimate_tokens,
    tool_name,
    wire_name,
)
from agents.providers.openai_compatible import OpenAIProvider
from agents.providers.scripted import ScriptedProvider

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


__all__ = [
    "AnthropicProvider",
    "Completion",
    "OpenAIProvider",
    "Provider",
    "ProviderError",
    "ReplyRefused",
    "ScriptedProvider",
    "ToolCall",
    "anthropic_messages",
    "estimate_tokens",
    "get_provider",
    "tool_name",
    "wire_name",
]
