"""The ``scripted`` provider: deterministic and offline, the agent version's ``script`` played back."""

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from agents import replies
from agents.providers.base import Completion, ProviderError, ToolCall, as_text, estimate_tokens, wire_name
from governance.policies import ConditionError, ConditionRuntimeError, compile_condition

_EXPRESSION = re.compile(r"\{\{\s*(.+?)\s*\}\}")


class ScriptedProvider:
    """See the module docstring. Usage is estimated from the text, so budgets work as with a real model."""

    def complete(
        self,
        *,
        model: Mapping[str, Any],
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]],
        timeout: float,
        script: Sequence[Mapping[str, Any]],
    ) -> Completion:
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
                    call = ToolCall(
                        id=f"call_{position}",
                        name=entry["call"],
                        arguments=arguments,
                        raw_arguments=json.dumps(arguments),
                    )
                    message = {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": call.id,
                                "type": "function",
                                "function": {"name": wire_name(call.name), "arguments": call.raw_arguments},
                            }
                        ],
                        "meta": {"script_position": position},
                    }
                    return Completion("", (call,), prompt_tokens, estimate_tokens(call.raw_arguments), message)
                text = _EXPRESSION.sub(lambda match: as_text(_value(match.group(1), facts)), str(entry["answer"]))
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
