"""The policy spec's JSON Schema and its validation: ``POLICY_SCHEMA`` and ``validate_policy_spec``, which
reports field errors keyed by path in words meant for a policy author, including a condition that does not compile."""

from collections.abc import Iterable
from typing import Any, cast

from jsonschema import Draft202012Validator, ValidationError

from governance.detectors.findings import PII_KINDS
from governance.policies.conditions import compile_condition
from governance.policies.constants import (
    CHECKPOINTS,
    DEFAULT_ORDER,
    EFFECTS,
    MAX_CONDITION_LENGTH,
    MAX_ORDER,
    REDACT_KINDS,
    RISKS,
    SCOPE_TYPES,
    SEVERITIES,
)
from governance.policies.errors import ConditionError

POLICY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Guardrail policy",
    "description": "An organisation-wide rule evaluated at a checkpoint: a CEL condition and an effect.",
    "type": "object",
    "additionalProperties": False,
    "required": ["checkpoint", "condition", "effect", "severity"],
    "properties": {
        "description": {
            "type": "string",
            "maxLength": 2000,
            "description": "What the policy is for (free text).",
        },
        "checkpoint": {
            "enum": list(CHECKPOINTS),
            "description": "Where the policy is evaluated: input (what comes in), output (what goes out), "
            "action (a tool call about to be made).",
        },
        "scope": {
            "type": "object",
            "description": "Which traffic the policy applies to; all when absent.",
            "default": {"type": "all"},
            "additionalProperties": False,
            "required": ["type"],
            "properties": {
                "type": {
                    "enum": list(SCOPE_TYPES),
                    "description": "all, or the fact that must equal value: agent, persona, tool or risk.",
                },
                "value": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The agent or persona slug, tool name or risk level (low, medium, high, "
                    "critical) the fact must equal; absent for all.",
                },
            },
            "allOf": [
                {
                    "if": {"properties": {"type": {"const": "all"}}, "required": ["type"]},
                    "then": {"not": {"required": ["value"]}},
                },
                {
                    "if": {"properties": {"type": {"enum": ["agent", "persona", "tool"]}}, "required": ["type"]},
                    "then": {"required": ["value"]},
                },
                {
                    "if": {"properties": {"type": {"const": "risk"}}, "required": ["type"]},
                    "then": {"required": ["value"], "properties": {"value": {"enum": list(RISKS)}}},
                },
            ],
        },
        "condition": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_CONDITION_LENGTH,
            "description": "CEL expression over the checkpoint's facts, returning a bool; the policy matches "
            "when it is true.",
        },
        "effect": {
            "enum": list(EFFECTS),
            "description": "What a match does: allow, deny, require_approval and escalate decide and stop "
            "evaluation; redact accumulates and evaluation continues.",
        },
        "redact": {
            "type": "array",
            "items": {"enum": list(REDACT_KINDS)},
            "minItems": 1,
            "uniqueItems": True,
            "default": list(PII_KINDS),
            "description": "Kinds to redact when the policy matches; only with effect redact. Default: every "
            "PII kind (email, phone, card, iban).",
        },
        "severity": {
            "enum": list(SEVERITIES),
            "description": "How serious a match is, for reviewers, alerts and metrics.",
        },
        "order": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_ORDER,
            "default": DEFAULT_ORDER,
            "description": "Evaluation order: lower runs first; ties are broken by the policy's slug.",
        },
        "message": {
            "type": "string",
            "maxLength": 2000,
            "description": "Why, shown to the user or reviewer when the policy matches.",
        },
        "tests": {
            "type": "array",
            "description": "Examples the policy must get right before it can be approved.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["facts", "expect"],
                "properties": {
                    "name": {"type": "string", "maxLength": 200, "description": "What the example shows."},
                    "facts": {"type": "object", "description": "The facts at the checkpoint, as in FACTS."},
                    "expect": {
                        "enum": list(EFFECTS),
                        "description": "The decision expected when this policy alone is evaluated on the facts.",
                    },
                },
            },
        },
    },
    "dependentSchemas": {"redact": {"properties": {"effect": {"const": "redact"}}}},
}

Draft202012Validator.check_schema(POLICY_SCHEMA)
_VALIDATOR = Draft202012Validator(POLICY_SCHEMA)


def _path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _schema_errors(error: ValidationError) -> list[tuple[str, str]]:
    """(path, message) pairs for one JSON-Schema error, worded for a policy author."""
    where = list(error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        missing = [name for name in cast(list[str], error.validator_value) if name not in instance]
        if where == ["scope"] and missing == ["value"]:
            return [("scope.value", f"required when scope type is {instance.get('type')!r}")]
        return [(_path([*where, name]), "This field is required.") for name in missing]
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {})
        return [(_path([*where, name]), "Unknown field.") for name in instance if name not in known]
    if error.validator == "not" and where == ["scope"]:
        return [("scope.value", "must be absent when scope type is 'all'")]
    if "dependentSchemas" in error.schema_path:
        return [("redact", "only allowed with effect 'redact': remove it or change the effect")]
    if error.validator == "enum":
        choices = ", ".join(str(choice) for choice in cast(list[Any], error.validator_value))
        return [(_path(where), f"{instance!r} is not one of: {choices}")]
    return [(_path(where), error.message)]


def validate_policy_spec(spec: dict[str, Any]) -> dict[str, list[str]]:
    """Field errors of a policy spec, keyed by path (``"scope.value"``, ``"tests[0].expect"``); empty when valid.

    Schema errors come first; a condition that does not compile is reported under ``"condition"`` with its
    position (``"Syntax error at line 1, column 8: ..."``). Errors about the spec as a whole are under ``""``.
    """
    errors: dict[str, list[str]] = {}
    for error in sorted(_VALIDATOR.iter_errors(spec), key=lambda e: [str(part) for part in e.absolute_path]):
        for path, message in _schema_errors(error):
            messages = errors.setdefault(path, [])
            if message not in messages:
                messages.append(message)
    condition = spec.get("condition") if isinstance(spec, dict) else None
    if isinstance(condition, str):
        try:
            compile_condition(condition)
        except ConditionError as error:
            errors["condition"] = [str(error)]  # says more than the schema's length messages
    return errors
