"""The agent definition spec (governed kind ``agent``): its JSON Schema and the checks beyond it.

Beyond the schema: every granted tool exists, every CEL expression compiles (grant approval conditions and
argument constraints, script conditions and arguments, answer templates), grant expiries are timestamps, and a
``scripted`` model has a script while other providers have none. See ``docs/agents.md``.
"""

import datetime as dt
import re
from typing import Any

import jsonschema

from agents import model_access
from governance.checks import CheckResult
from governance.policies import ConditionError, compile_condition

AUTONOMY = ("observe", "propose", "supervised", "autonomous")
PROVIDERS = ("scripted", "openai", "anthropic")
_EXPRESSION = re.compile(r"\{\{\s*(.+?)\s*\}\}")

_CEL = {"type": "string", "minLength": 1, "maxLength": 4000}

AGENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Agent definition",
    "type": "object",
    "additionalProperties": False,
    "required": ["instructions", "model", "autonomy", "budgets"],
    "properties": {
        "description": {"type": "string", "maxLength": 2000},
        "instructions": {"type": "string", "minLength": 1, "maxLength": 20000, "description": "The system prompt."},
        "input_schema": {
            "type": "object",
            "description": "JSON Schema (draft 2020-12) a run's input must satisfy; a run whose input does not is "
            "refused with field errors. Without one, any JSON object is accepted.",
        },
        "model": {
            "type": "object",
            "additionalProperties": False,
            "required": ["provider", "name"],
            "properties": {
                "provider": {"enum": list(PROVIDERS)},
                "name": {"type": "string", "minLength": 1, "maxLength": 200},
                "base_url": {"type": "string", "format": "uri", "maxLength": 500},
                "api_key_env": {
                    "type": "string",
                    "pattern": "^[A-Z_][A-Z0-9_]*$",
                    "description": "The environment variable with the API key: by default OPENAI_API_KEY for "
                    "openai, ANTHROPIC_API_KEY for anthropic.",
                },
                "parameters": {"type": "object", "description": "Passed to the model: temperature, max_tokens, ..."},
                "pricing": {
                    "type": "object",
                    "additionalProperties": False,
                    "description": "Cost per 1,000 tokens, for the cost budget.",
                    "properties": {
                        "input_per_1k": {"type": "number", "minimum": 0},
                        "output_per_1k": {"type": "number", "minimum": 0},
                    },
                },
                "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 600, "default": 60},
                "max_retries": {"type": "integer", "minimum": 0, "maximum": 10, "default": 3},
            },
        },
        "autonomy": {
            "enum": list(AUTONOMY),
            "description": "observe: no write tools; propose: every write needs approval; supervised: high and "
            "critical writes need approval; autonomous: the grants and the policies alone decide.",
        },
        "budgets": {
            "type": "object",
            "additionalProperties": False,
            "required": ["steps"],
            "properties": {
                "steps": {"type": "integer", "minimum": 1, "maximum": 1000},
                "tokens": {"type": "integer", "minimum": 1},
                "cost": {"type": "number", "minimum": 0},
                "wall_seconds": {"type": "integer", "minimum": 1, "maximum": 86400},
            },
        },
        "memory": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scope"],
            "properties": {
                "scope": {
                    "enum": ["none", "requester", "agent"],
                    "description": "What a run remembers of earlier runs of the agent: nothing; the runs started "
                    "by the same user or API client; or every run.",
                },
                "runs": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
            },
        },
        "escalation": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "budget_overrun": {
                    "enum": ["fail", "review"],
                    "default": "fail",
                    "description": "When a budget would be exceeded. fail: the run fails. review: it waits for a "
                    "person in the review queue, who may grant that budget once more.",
                },
            },
        },
        "grants": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["tool"],
                "properties": {
                    "tool": {"type": "string", "minLength": 1, "maxLength": 100},
                    "approval": {
                        "oneOf": [
                            {"enum": ["never", "always"]},
                            {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["when"],
                                "properties": {"when": _CEL},
                            },
                        ],
                        "default": "never",
                        "description": "never, always, or {'when': CEL over args, input, tool, risk}.",
                    },
                    "constraints": {
                        "type": "array",
                        "items": _CEL,
                        "description": "CEL conditions over args, input, tool and risk; each must hold.",
                    },
                    "rate_limit": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["calls", "per_seconds"],
                        "properties": {
                            "calls": {"type": "integer", "minimum": 1},
                            "per_seconds": {"type": "integer", "minimum": 1},
                        },
                    },
                    "expires_at": {"type": "string", "description": "ISO 8601 timestamp; no calls after it."},
                },
            },
        },
        "script": {
            "type": "array",
            "description": "For the scripted provider: tool calls and answers, in order.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "when": _CEL,
                    "call": {"type": "string", "minLength": 1},
                    "arguments": {"type": "object", "additionalProperties": _CEL},
                    "answer": {"type": "string", "minLength": 1, "maxLength": 20000},
                },
                "oneOf": [{"required": ["call"]}, {"required": ["answer"]}],
            },
        },
    },
}


def _compile(expression: str, path: str, errors: dict[str, list[str]]) -> None:
    try:
        compile_condition(expression)
    except ConditionError as error:
        errors.setdefault(path, []).append(f"the expression does not compile: {error}")


def parse_expiry(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def validate_agent(spec: Any) -> dict[str, list[str]]:
    """Field errors of an agent spec that satisfies the schema (see the module docstring)."""
    errors: dict[str, list[str]] = {}
    _grant_errors(spec.get("grants") or [], errors)
    if "input_schema" in spec:
        try:
            jsonschema.Draft202012Validator.check_schema(spec["input_schema"])
        except jsonschema.SchemaError as error:
            errors.setdefault("input_schema", []).append(f"Not a JSON Schema: {error.message}")
    _model_errors(spec, errors)
    return errors


def _grant_errors(grants: list[dict[str, Any]], errors: dict[str, list[str]]) -> None:
    """Grants of tools that exist, each once, with conditions that compile and expiries that are timestamps."""
    from agents.models import Tool

    names = [grant["tool"] for grant in grants]
    known = set(Tool.objects.filter(name__in=names, available=True).values_list("name", flat=True))
    for index, grant in enumerate(grants):
        path = f"grants[{index}]"
        if grant["tool"] not in known:
            errors.setdefault(f"{path}.tool", []).append(f"There is no tool {grant['tool']!r}.")
        if grant["tool"] in names[:index]:
            errors.setdefault(f"{path}.tool", []).append(f"The tool {grant['tool']!r} is granted twice.")
        approval = grant.get("approval")
        if isinstance(approval, dict):
            _compile(approval["when"], f"{path}.approval.when", errors)
        for c_index, constraint in enumerate(grant.get("constraints") or []):
            _compile(constraint, f"{path}.constraints[{c_index}]", errors)
        if "expires_at" in grant and parse_expiry(grant["expires_at"]) is None:
            errors.setdefault(f"{path}.expires_at", []).append("Write a timestamp like 2027-01-31T18:00:00Z.")


def _model_errors(spec: dict[str, Any], errors: dict[str, list[str]]) -> None:
    """A model reachable as configured; a script exactly when the model is scripted, calling granted tools."""
    script = spec.get("script")
    provider = spec["model"]["provider"]
    if provider != "scripted":
        for path, messages in model_access.field_errors(spec["model"], "model").items():
            errors.setdefault(path, []).extend(messages)
        if script:
            errors.setdefault("script", []).append(f"Only the scripted provider uses a script, not {provider!r}.")
    elif not script:
        errors.setdefault("script", []).append("A scripted model needs a script.")
    granted = {grant["tool"] for grant in spec.get("grants") or []}
    for index, entry in enumerate(script or []):
        _script_entry_errors(entry, f"script[{index}]", granted, errors)


def _script_entry_errors(entry: dict[str, Any], path: str, granted: set[str], errors: dict[str, list[str]]) -> None:
    if "when" in entry:
        _compile(entry["when"], f"{path}.when", errors)
    if "call" in entry and entry["call"] not in granted:
        errors.setdefault(f"{path}.call", []).append(f"The script calls {entry['call']!r}, which is not granted.")
    for name, expression in (entry.get("arguments") or {}).items():
        _compile(expression, f"{path}.arguments.{name}", errors)
    for match in _EXPRESSION.finditer(entry.get("answer") or ""):
        _compile(match.group(1), f"{path}.answer", errors)


def model_check(spec: dict[str, Any]) -> CheckResult:
    """The host the agent's model is reached at and the variable its key comes from, for the reviewer."""
    return model_access.check(spec.get("model"))


def script_call_errors(spec: dict[str, Any], parameters: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Field errors of a script's calls against the argument schemas of the tools it calls (``parameters`` by
    tool name): an argument the schema does not have, a required one the call leaves out. A call the tool would
    refuse every time is a version that can never work, caught before review rather than at run time."""
    errors: dict[str, list[str]] = {}
    for index, entry in enumerate(spec.get("script") or []):
        schema = parameters.get(entry.get("call", ""))
        if schema is None:
            continue
        given = set(entry.get("arguments") or {})
        known = set(schema.get("properties") or {})
        path = f"script[{index}].arguments"
        if schema.get("additionalProperties") is False:
            for name in sorted(given - known):
                expected = ", ".join(sorted(known)) or "none"
                errors.setdefault(f"{path}.{name}", []).append(
                    f"{entry['call']} takes no argument {name!r} (its arguments: {expected})."
                )
        for name in sorted(set(schema.get("required") or []) - given):
            errors.setdefault(path, []).append(f"{entry['call']} needs the argument {name!r}, which is not given.")
    return errors


def input_errors(spec: dict[str, Any], given: Any) -> dict[str, list[str]]:
    """Field errors (``input.sku``) of a run's input against the agent's ``input_schema``; none without one."""
    schema = spec.get("input_schema")
    if schema is None:
        return {}
    errors: dict[str, list[str]] = {}
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(given), key=lambda e: list(e.absolute_path)):
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
        errors.setdefault(f"input{path}", []).append(error.message)
    return errors
