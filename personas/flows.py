"""Dialogue flows as data: the persona schema, the checks beyond it, templates, slot answers and triggers.

The JSON Schema lives beside this file (``persona.schema.json``) and is documented in ``docs/flows.md``. What a
schema cannot say is checked by ``validate_persona``: step ids unique within a flow and every ``next``/``goto``
pointing at one, trigger patterns and ``text`` validation patterns that compile (RE2, so no pattern can take
exponential time), branch conditions that compile as CEL, and templates that only name slots the flow or the
persona can have. Every message names the flow and the step it is about.

Templates interpolate ``{{slot}}`` placeholders in one pass: a slot value is inserted as text and never read as a
template, and nothing else in a template is interpreted. Everything here is a pure function of its inputs, so the
same persona version and the same messages give the same replies.
"""

import datetime as dt
import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import re2

from agents import model_access
from governance.policies import ConditionError, compile_condition

SCHEMA: dict[str, Any] = json.loads((Path(__file__).with_name("persona.schema.json")).read_text())

SLOT_TYPES = ("text", "number", "email", "choice", "date")
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_FALLBACKS = 3
DEFAULT_MESSAGES = {
    name: definition["default"] for name, definition in SCHEMA["properties"]["messages"]["properties"].items()
}
# Slots every template may use, whatever the flow: the persona's display name.
BUILTIN_SLOTS = frozenset({"persona_name"})

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}")
_BRACES = re.compile(r"\{\{|\}\}")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")
_NUMBER = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")
_WORD = re.compile(r"\w+")
_DIGIT = re.compile("[0-9]")
DATE_FORMATS = (
    "%Y-%m-%d",
    "%d/%m/%Y",
    "%d.%m.%Y",
    "%d %B %Y",
    "%d %b %Y",
    "%B %d %Y",
    "%B %d, %Y",
    "%b %d %Y",
    "%b %d, %Y",
)
# A message matches an example phrasing when it shares at least this share of the example's words, not counting
# the common words below ("I want to return something" is matched by its one word that says something: "return").
EXAMPLE_OVERLAP = 0.6
COMMON_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "can",
        "could",
        "do",
        "does",
        "for",
        "have",
        "i",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "or",
        "please",
        "the",
        "this",
        "to",
        "want",
        "we",
        "would",
        "you",
        "your",
    ]
)


# --- where an error is ------------------------------------------------------------------------------------------


def _name(items: Any, index: Any, what: str) -> str:
    if isinstance(items, list) and isinstance(index, int) and 0 <= index < len(items):
        item = items[index]
        if isinstance(item, Mapping) and isinstance(item.get("id"), str):
            return f"{what} {item['id']!r}"
    return f"{what} #{index + 1 if isinstance(index, int) else index}"


def locate(spec: Any, parts: Sequence[Any]) -> str:
    """A path into a persona spec as people say it: ``flow 'order_status', step 'ask_email'`` ("" outside flows)."""
    if len(parts) < 2 or parts[0] != "flows" or not isinstance(spec, Mapping):
        return ""
    flows = spec.get("flows")
    where = _name(flows, parts[1], "flow")
    if len(parts) >= 4 and parts[2] == "steps" and isinstance(flows, list) and isinstance(parts[1], int):
        flow = flows[parts[1]] if 0 <= parts[1] < len(flows) else {}
        where += ", " + _name(flow.get("steps") if isinstance(flow, Mapping) else None, parts[3], "step")
    return where


# --- templates ----------------------------------------------------------------------------------------------------


def placeholders(template: str) -> list[str]:
    return _PLACEHOLDER.findall(template)


def render(template: str, slots: Mapping[str, Any]) -> str:
    """``template`` with each ``{{slot}}`` replaced by the slot's value (empty when unset), in one pass."""

    def value(match: re.Match[str]) -> str:
        root, *path = match.group(1).split(".")
        found = slots.get(root)
        for key in path:  # result.order.status: fields of a structured value (an agent's result)
            found = found.get(key) if isinstance(found, Mapping) else None
        if found is None:
            return ""
        if isinstance(found, bool):
            return "yes" if found else "no"
        if isinstance(found, float) and found.is_integer():
            return str(int(found))
        return str(found)

    return _PLACEHOLDER.sub(value, template)


def value(template: str, slots: Mapping[str, Any]) -> Any:
    """A template that is one placeholder and nothing else gives the slot's value as it is (a number stays a
    number, for an agent's input); any other template gives its rendered text."""
    whole = _PLACEHOLDER.fullmatch(template.strip())
    if whole and "." not in whole.group(1) and slots.get(whole.group(1)) is not None:
        return slots[whole.group(1)]
    return render(template, slots)


def templates(spec: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """Every text the persona can send: ``(path, where, template)``; ``where`` names the flow and step."""
    for key in ("greeting", "fallback", "handover"):
        if isinstance(spec.get(key), str):
            yield key, key, spec[key]
    messages = spec.get("messages") or {}
    for key, text in messages.items():
        if isinstance(text, str):
            yield f"messages.{key}", f"message {key!r}", text
    for flow_index, flow in enumerate(spec.get("flows") or []):
        for step_index, step in enumerate(flow.get("steps") or []):
            where = f"flow {flow.get('id')!r}, step {step.get('id')!r}"
            for key in ("text", "prompt", "reprompt", "reply"):
                if isinstance(step.get(key), str):
                    yield f"flows[{flow_index}].steps[{step_index}].{key}", where, step[key]


# --- validation ---------------------------------------------------------------------------------------------------


def _compile_pattern(pattern: str) -> str | None:
    """The error of an RE2 pattern that does not compile, else None."""
    try:
        _regex(pattern, False)
    except re2.error as error:
        reason = error.args[0] if error.args else ""
        return (reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)) or "invalid pattern"
    return None


_RELATIVE_DATE = re.compile(r"^today(?:([+-])(\d{1,4})([dmy]))?$")


def _shift(day: dt.date, sign: int, amount: int, unit: str) -> dt.date:
    if unit == "d":
        return day + dt.timedelta(days=sign * amount)
    months = day.year * 12 + day.month - 1 + sign * amount * (12 if unit == "y" else 1)
    year, month = divmod(months, 12)
    for last_day in (day.day, 30, 29, 28):  # 29 February, 31 March ... keep to the month's last day
        try:
            return day.replace(year=year, month=month + 1, day=min(day.day, last_day))
        except ValueError:
            continue
    raise ValueError(f"cannot shift {day} by {sign * amount}{unit}")


def _date(value: Any, today: dt.date | None = None) -> dt.date | None:
    """A date bound: ``YYYY-MM-DD``, or relative to the day the answer is given: ``today``, ``today-18y``,
    ``today+30d``, ``today-6m``."""
    if not isinstance(value, str):
        return None
    relative = _RELATIVE_DATE.match(value.strip())
    if relative:
        day = today or dt.date.today()
        sign, amount, unit = relative.groups()
        return _shift(day, -1 if sign == "-" else 1, int(amount), unit) if sign else day
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _check_ask(step: Mapping[str, Any], add: Any) -> None:
    slot_type = step.get("slot_type", "text")
    validation = step.get("validation") or {}
    allowed = {
        "text": {"pattern", "min_length", "max_length"},
        "number": {"min", "max", "integer"},
        "date": {"min", "max"},
        "email": set(),
        "choice": set(),
    }[slot_type]
    for key in validation:
        if key not in allowed:
            add(f"validation.{key}", f"{key!r} does not apply to slots of type {slot_type}")
    if "pattern" in validation and (error := _compile_pattern(validation["pattern"])):
        add("validation.pattern", f"the pattern does not compile: {error}")
    for bound in ("min", "max"):
        if bound not in validation:
            continue
        value = validation[bound]
        if slot_type == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
            add(f"validation.{bound}", "must be a number")
        if slot_type == "date" and _date(value) is None:
            add(f"validation.{bound}", "must be a date written YYYY-MM-DD, or today, today-18y, today+30d ...")
    low, high = validation.get("min"), validation.get("max")
    if slot_type == "number" and isinstance(low, int | float) and isinstance(high, int | float) and low > high:
        add("validation", "min is greater than max")
    if slot_type == "date" and (a := _date(low)) and (b := _date(high)) and a > b:
        add("validation", "min is after max")
    if validation.get("min_length", 0) > validation.get("max_length", 4000):
        add("validation", "min_length is greater than max_length")


def _check_flow(flow: Mapping[str, Any], flow_path: str, add_error: Any) -> None:
    flow_name = f"flow {flow['id']!r}"
    steps = flow["steps"]
    ids = [step["id"] for step in steps]
    trigger = flow["trigger"]
    if not any(trigger.get(key) for key in ("keywords", "patterns", "examples")):
        add_error(f"{flow_path}.trigger", f"{flow_name}: the trigger needs at least one keyword, pattern or example")
    for index, pattern in enumerate(trigger.get("patterns") or []):
        if error := _compile_pattern(pattern):
            add_error(f"{flow_path}.trigger.patterns[{index}]", f"{flow_name}: the pattern does not compile: {error}")
    # Slots a template can rely on: every slot the flow asks for or sets (an unset one renders empty).
    known = set(BUILTIN_SLOTS) | {step["slot"] for step in steps if step["type"] in {"ask", "set"}}
    seen: set[str] = set()
    for index, step in enumerate(steps):
        where = f"{flow_name}, step {step['id']!r}"
        path = f"{flow_path}.steps[{index}]"

        def add(key: str, message: str, *, path: str = path, where: str = where) -> None:
            add_error(f"{path}.{key}" if key else path, f"{where}: {message}")

        if step["id"] in seen:
            add("id", f"the id {step['id']!r} is used by another step of the flow")
        seen.add(step["id"])
        for key in ("next", "default"):
            if key in step and step[key] not in ids:
                add(key, f"there is no step {step[key]!r} in the flow")
        for case_index, case in enumerate(step.get("cases") or []):
            if case["goto"] not in ids:
                add(f"cases[{case_index}].goto", f"there is no step {case['goto']!r} in the flow")
            try:
                compile_condition(case["when"])
            except ConditionError as error:
                add(f"cases[{case_index}].when", f"the condition does not compile: {error}")
        if step["type"] == "ask":
            _check_ask(step, add)
        for key in ("text", "prompt", "reprompt", "reason", "value"):
            if isinstance(step.get(key), str):
                _check_template(step[key], known, lambda message, key=key: add(key, message))
        if isinstance(step.get("reply"), str):  # a hand-off's reply may also use the run's result
            _check_template(step["reply"], known | {"result"}, lambda message: add("reply", message))
        for name, template in (step.get("input") or {}).items():
            _check_template(template, known, lambda message, name=name: add(f"input.{name}", message))


def _check_template(template: str, known: set[str], add: Any, *, where: str = "the flow never fills") -> None:
    unknown = sorted({name for name in placeholders(template) if name.split(".")[0] not in known})
    if unknown:
        add(f"the template names slots {where}: {', '.join(unknown)}")
    if _BRACES.search(_PLACEHOLDER.sub("", template)):
        add("a '{{' or '}}' is not part of a {{slot}} placeholder")


def validate_persona(spec: Any) -> dict[str, list[str]]:
    """Field errors of a persona spec that already satisfies the schema (see the module docstring)."""
    errors: dict[str, list[str]] = {}

    def add_error(path: str, message: str) -> None:
        errors.setdefault(path, []).append(message)

    outside = f"that only exist inside flows (here only {', '.join(sorted(BUILTIN_SLOTS))} can be used)"
    for key in ("greeting", "fallback", "handover"):
        _check_template(spec[key], set(BUILTIN_SLOTS), lambda message, key=key: add_error(key, message), where=outside)
    for key, text in (spec.get("messages") or {}).items():
        _check_template(
            text, set(BUILTIN_SLOTS), lambda message, key=key: add_error(f"messages.{key}", message), where=outside
        )
    flow_ids: set[str] = set()
    for index, flow in enumerate(spec["flows"]):
        if flow["id"] in flow_ids:
            add_error(f"flows[{index}].id", f"flow {flow['id']!r}: another flow has this id")
        flow_ids.add(flow["id"])
        _check_flow(flow, f"flows[{index}]", add_error)
    phrasing = spec.get("llm_phrasing") or {}
    if phrasing.get("enabled"):
        for key in ("provider", "model"):
            if not phrasing.get(key):
                add_error(f"llm_phrasing.{key}", f"LLM phrasing needs a {key} when it is enabled.")
        model = {key: phrasing.get(key) for key in ("provider", "base_url", "api_key_env")}
        access_errors = model_access.field_errors(model, "llm_phrasing") if model["provider"] else {}
        for path, messages in access_errors.items():
            for message in messages:
                add_error(path, message)
    return errors


# --- answers to "ask" steps ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    ok: bool
    value: Any = None
    problem: str = ""


def _number(text: str) -> float | int | None:
    compact = text.strip()
    if not _NUMBER.match(compact):
        return None
    value = float(compact.replace(",", ""))
    return int(value) if value.is_integer() and "." not in compact else value


def parse_date(text: str) -> dt.date | None:
    compact = " ".join(text.strip().split())
    for fmt in DATE_FORMATS:
        try:
            return dt.datetime.strptime(compact, fmt).date()
        except ValueError:
            continue
    return None


def parse_answer(step: Mapping[str, Any], text: str) -> Answer:
    """The value of an ``ask`` step's slot in ``text``, or what is wrong with it."""
    slot_type = step.get("slot_type", "text")
    validation = step.get("validation") or {}
    answer = text.strip()
    if not answer:
        return Answer(False, problem="Please type an answer.")
    if slot_type == "number":
        number = _number(answer)
        if number is None:
            return Answer(False, problem="Please answer with a number.")
        if validation.get("integer") and not float(number).is_integer():
            return Answer(False, problem="Please answer with a whole number.")
        if "min" in validation and number < validation["min"]:
            return Answer(False, problem=f"The number must be at least {validation['min']}.")
        if "max" in validation and number > validation["max"]:
            return Answer(False, problem=f"The number must be at most {validation['max']}.")
        return Answer(True, number)
    if slot_type == "email":
        if not _EMAIL.match(answer) or len(answer) > 254:
            return Answer(False, problem="Please give an e-mail address, like name@example.com.")
        return Answer(True, answer)
    if slot_type == "choice":
        choices = step["choices"]
        lowered = {choice.casefold(): choice for choice in choices}
        chosen = lowered.get(answer.casefold().rstrip(".!"))
        if chosen is None and answer.isdecimal() and answer.isascii() and 1 <= int(answer) <= len(choices):
            chosen = choices[int(answer) - 1]
        if chosen is None:
            return Answer(False, problem=f"Please choose one of: {', '.join(choices)}.")
        return Answer(True, chosen)
    if slot_type == "date":
        date = parse_date(answer)
        if date is None:
            return Answer(False, problem="Please give a date, like 2026-03-14.")
        low, high = _date(validation.get("min")), _date(validation.get("max"))
        if low and date < low:
            return Answer(False, problem=f"The date must be on or after {low.isoformat()}.")
        if high and date > high:
            return Answer(False, problem=f"The date must be on or before {high.isoformat()}.")
        return Answer(True, date.isoformat())
    if "min_length" in validation and len(answer) < validation["min_length"]:
        return Answer(False, problem=f"Please use at least {validation['min_length']} characters.")
    if "max_length" in validation and len(answer) > validation["max_length"]:
        return Answer(False, problem=f"Please use at most {validation['max_length']} characters.")
    if "pattern" in validation and not _full_match(validation["pattern"], answer):
        return Answer(False, problem="That doesn't look right.")
    return Answer(True, answer)


# Punctuation around a word of a message, not part of a value written in it ("SKU-123." or "(SO-12345)").
_AROUND_A_WORD = "\"'()[]{}<>.,;:!?"


def slot_value_in(step: Mapping[str, Any], text: str) -> Any:
    """The value of an ``ask`` step's slot that a message starting its flow already holds, else None.

    Only a value that cannot be mistaken for anything else counts: the step is a text slot with a ``pattern``, and
    exactly one word of the message has a digit in it and is accepted by the step's validation ("I want to restock
    SKU-123" holds ``SKU-123``). Names, free text, numbers and choices are asked for, since the words that start a
    flow would fit them too ("open an account" is not a name, nor the 2 of "I ordered 2 lamps" a quantity).
    """
    if step.get("slot_type", "text") != "text" or "pattern" not in (step.get("validation") or {}):
        return None
    words = {word.strip(_AROUND_A_WORD) for word in text.split()}
    found = [answer.value for word in sorted(words) if _DIGIT.search(word) and (answer := parse_answer(step, word)).ok]
    return found[0] if len(found) == 1 else None


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str, ignore_case: bool) -> Any:
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.log_errors = False
    return re2.compile(pattern, options)


def _full_match(pattern: str, text: str) -> bool:
    return _regex(pattern, False).fullmatch(text) is not None


# --- triggers -----------------------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return [word.casefold() for word in _WORD.findall(text)]


def _contains_phrase(words: list[str], phrase: list[str]) -> bool:
    size = len(phrase)
    return bool(size) and any(words[i : i + size] == phrase for i in range(len(words) - size + 1))


def trigger_score(trigger: Mapping[str, Any], text: str) -> float:
    """How well ``text`` matches a flow's trigger: 1.0 for a keyword or pattern, else the best share of an
    example's words (``COMMON_WORDS`` aside, unless the example has nothing else) found in the text when it reaches
    ``EXAMPLE_OVERLAP``; 0.0 for no match."""
    words = _words(text)
    if any(_contains_phrase(words, _words(keyword)) for keyword in trigger.get("keywords") or []):
        return 1.0
    if any(_regex(pattern, True).search(text) for pattern in trigger.get("patterns") or []):
        return 1.0
    present = set(words)
    best = 0.0
    for example in trigger.get("examples") or []:
        wanted = set(_words(example)) - COMMON_WORDS or set(_words(example))
        if wanted:
            best = max(best, len(wanted & present) / len(wanted))
    return best if best >= EXAMPLE_OVERLAP else 0.0


def match_flow(flows: Sequence[Mapping[str, Any]], text: str) -> Mapping[str, Any] | None:
    """The flow ``text`` starts: the best trigger score, the first flow on a tie; None when nothing matches."""
    best, chosen = 0.0, None
    for flow in flows:
        score = trigger_score(flow["trigger"], text)
        if score > best:
            best, chosen = score, flow
    return chosen
