"""What a model may return: its reply checked before anything acts on it or stores it.

A model server is not trusted to speak its protocol. Its body is parsed here (``loads``), keeping every number JSON
cannot carry safely as an ``OddNumber`` instead of a float or int that would later break a database (PostgreSQL's
``jsonb`` refuses ``NaN``) or a tool; then the shape of a Chat Completions or Messages reply is checked field by
field (``chat_completion_problem``, ``anthropic_message_problem``). Each check answers the reason the reply must be
refused, in words the model is shown, or None. A body that is not JSON at all is not the model's reply but a
broken transport: ``loads`` raises ``ValueError`` and the provider retries.

Numbers a reply may hold are those RFC 8259 (section 6) calls interoperable: finite IEEE 754 doubles, and integers
between -(2**53 - 1) and 2**53 - 1, which every JSON reader carries exactly.
"""

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1
MAX_TOKENS_A_REPLY = 100_000_000  # more than any model reports for one reply; keeps counters within their columns
MAX_CALL_ID = 100  # the length of ``Step.call_id``


class OddNumber:
    """A number as the model wrote it, which JSON cannot carry safely: ``NaN``, ``Infinity``, ``1e400``, a 400-digit
    integer. Never stored: a reply holding one is refused."""

    def __init__(self, literal: str) -> None:
        self.literal = literal

    def __repr__(self) -> str:
        return f"OddNumber({self.literal!r})"

    def __str__(self) -> str:
        if self.literal in ("NaN", "Infinity", "-Infinity"):
            return f"{self.literal}, which JSON does not allow"
        digits = self.literal.lstrip("-")
        if digits.isdigit():
            return f"a {len(digits)}-digit integer, beyond the ±{MAX_SAFE_INTEGER} JSON carries exactly"
        return f"{self.literal[:40]}, beyond the range of a 64-bit float"


def _integer(literal: str) -> int | OddNumber:
    if len(literal.lstrip("-")) > len(str(MAX_SAFE_INTEGER)):  # never converts a huge literal
        return OddNumber(literal)
    value = int(literal)
    return value if abs(value) <= MAX_SAFE_INTEGER else OddNumber(literal)


def _float(literal: str) -> float | OddNumber:
    value = float(literal)
    return value if math.isfinite(value) else OddNumber(literal)


def loads(text: str | bytes) -> Any:
    """JSON, with the numbers it cannot carry safely kept as ``OddNumber``; ``ValueError`` when it is not JSON."""
    try:
        return json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=OddNumber)
    except RecursionError as error:
        raise ValueError("nested too deeply") from error


def odd_numbers(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """``(path, what)`` for every number in ``value`` that JSON cannot carry safely, parsed or built in Python."""
    if isinstance(value, OddNumber):
        yield path, str(value)
    elif isinstance(value, float) and not math.isfinite(value):
        yield path, str(OddNumber("NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")))
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        yield path, str(OddNumber(str(value)))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from odd_numbers(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from odd_numbers(item, f"{path}[{index}]")


def odd_number_problem(value: Any, what: str) -> str | None:
    """The first number of ``value`` JSON cannot carry safely, as a reason to refuse the reply."""
    for path, odd in odd_numbers(value):
        return f"{what} hold {odd}" + (f" (at {path[:200]})" if path else "")
    return None


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL, and halves of a surrogate pair: no database stores them


def unstorable_text_problem(value: Any, what: str) -> str | None:
    """A string (or a key) in ``value`` holding a character no database column stores: ``\u0000`` (PostgreSQL
    refuses it in text and ``jsonb``), or half a surrogate pair (not Unicode text at all)."""
    strings: list[Any] = [value]
    while strings:
        item = strings.pop()
        if isinstance(item, str) and _UNSTORABLE.search(item):
            return f"{what} hold a NUL character or half a surrogate pair, which no database stores as text"
        if isinstance(item, Mapping):
            strings.extend(item.keys())
            strings.extend(item.values())
        elif isinstance(item, (list, tuple)):
            strings.extend(item)
    return None


def arguments(raw: str) -> tuple[dict[str, Any] | None, str | None]:
    """A tool call's arguments from their JSON text: the object (None when it is not a JSON object: the call is
    denied, see the runtime), and the reason to refuse the whole reply when they hold an odd number."""
    try:
        parsed = loads(raw) if raw else {}
    except ValueError:
        return None, None
    if not isinstance(parsed, dict):
        return None, None
    return parsed, unstorable_text_problem(parsed, "its arguments") or odd_number_problem(parsed, "its arguments")


def _shown(value: Any) -> str:
    """A field's value in a reason: short, whatever it is."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, OddNumber):
        return value.literal[:40] + ("…" if len(value.literal) > 40 else "")
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value[:40])
    return "an object" if isinstance(value, dict) else f"a {type(value).__name__}"


def _count(value: Any, name: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS_A_REPLY:
        return f"{name} is {_shown(value)}, not a whole number of tokens from 0 to {MAX_TOKENS_A_REPLY}"
    return None


def _call_id_problem(call_id: Any, number: int, seen: set[str]) -> str | None:
    if not isinstance(call_id, str) or not call_id or len(call_id) > MAX_CALL_ID:
        return f"tool call {number} has no id (a string of 1 to {MAX_CALL_ID} characters)"
    if call_id in seen:
        return f"tool call {number} repeats the id {call_id!r} of an earlier call"
    seen.add(call_id)
    return None


def _name_problem(name: Any, number: int) -> str | None:
    if not isinstance(name, str) or not name:
        return f"tool call {number} has no function name ({_shown(name)})"
    return None


# --- Chat Completions ---------------------------------------------------------------------------------------------


def chat_message(body: Any) -> Any:
    """The first choice's message of a Chat Completions body (``None`` when there is none)."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    return choices[0].get("message")


def chat_completion_problem(body: Any) -> str | None:
    """Why a Chat Completions body with choices cannot be acted on, or None."""
    problem = unstorable_text_problem(body, "the reply's fields")
    if problem:
        return problem
    message = chat_message(body)
    if not isinstance(message, dict):
        return "the reply has no message (choices[0].message is missing or not an object)"
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        return "the message's content is not a string"
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        return "the message's tool_calls is not a list"
    seen: set[str] = set()
    for number, call in enumerate(calls, 1):
        problem = _chat_call_problem(call, number, seen)
        if problem:
            return problem
    return _chat_usage_problem(body.get("usage")) or odd_number_problem(body, "the reply's fields")


def _chat_call_problem(call: Any, number: int, seen: set[str]) -> str | None:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        return f"tool call {number} is not a function call"
    function = call["function"]
    problem = _call_id_problem(call.get("id"), number, seen) or _name_problem(function.get("name"), number)
    if problem:
        return problem
    raw = function.get("arguments")
    if not isinstance(raw, str):
        return (
            f"tool call {number} ({function['name']}): its arguments are {_shown(raw)}, not the string of JSON "
            "the protocol requires"
        )
    problem = arguments(raw)[1]
    return f"tool call {number} ({function['name']}): {problem}" if problem else None


def _chat_usage_problem(usage: Any) -> str | None:
    if usage is None:
        return None
    if not isinstance(usage, dict):
        return "usage is not an object"
    return _count(usage.get("prompt_tokens"), "usage.prompt_tokens") or _count(
        usage.get("completion_tokens"), "usage.completion_tokens"
    )


# --- Messages (Anthropic) -----------------------------------------------------------------------------------------


def anthropic_message_problem(body: Any) -> str | None:
    """Why a Messages API body cannot be acted on, or None."""
    problem = unstorable_text_problem(body, "the reply's fields")
    if problem:
        return problem
    content = body.get("content") if isinstance(body, dict) else None
    if not isinstance(content, list):
        return "the reply has no content (a list of blocks)"
    seen: set[str] = set()
    calls = 0
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and not isinstance(block.get("text"), str):
            return "a text block has no text"
        if kind == "tool_use":
            calls += 1
            problem = _call_id_problem(block.get("id"), calls, seen) or _name_problem(block.get("name"), calls)
            problem = problem or odd_number_problem(block.get("input"), "its arguments")
            if problem:
                return problem if problem.startswith("tool call") else f"tool call {calls} ({block['name']}): {problem}"
    return _anthropic_usage_problem(body.get("usage")) or odd_number_problem(body, "the reply's fields")


def _anthropic_usage_problem(usage: Any) -> str | None:
    if usage is None:
        return None
    if not isinstance(usage, dict):
        return "usage is not an object"
    for name in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        if usage.get(name) is None and name.startswith("cache_"):
            continue
        problem = _count(usage.get(name), f"usage.{name}")
        if problem:
            return problem
    return None


# --- telling the model --------------------------------------------------------------------------------------------


def refusal_message(error: str) -> dict[str, str]:
    """What the model is shown, on its next call, in place of a reply that was refused."""
    return {
        "role": "user",
        "content": (
            f"Your last reply was refused and nothing in it was done ({error}). Answer again: with text, or with "
            "tool calls whose arguments are a string holding one JSON object; numbers must be finite, and "
            f"integers within ±{MAX_SAFE_INTEGER}."
        ),
    }


def refused_in_a_row(statuses: Sequence[str]) -> int:
    """How many of the latest model calls, by their steps' statuses in order, were refused in a row."""
    count = 0
    for status in reversed(statuses):
        if status != "failed":
            break
        count += 1
    return count
