"""Tool definitions as governed configuration (kind ``tool``), and the tool versions an agent version pins.

A tool's *definition* is everything that decides what a call does and how it is judged: description, argument
schema, side effect, risk, idempotence, timeout, compensation and, for an HTTP tool, its request (method, URL
template, plain headers, allowed hosts, whether private addresses are allowed, and the *names* of its secret
headers). It is the spec of the governed object of kind ``tool`` whose slug is the tool's name, so it is drafted,
reviewed by someone who did not write it, released under labels and rolled back like every other kind. The ``Tool``
row holds no definition: it is the identity grants and steps refer to (name, kind, availability) and the encrypted
values of the secret headers, which no version shows.

Python tools' definitions come from code (``services.tools_sync`` submits each change as the system); HTTP tools'
are edited in the console (``services.http_tool_save`` submits them as the Admin who edited). Submitting an agent
version for a label pins, on that version, the version of each granted tool, and of each granted tool's
compensating tool, released under that label (``agent_pins``); the runtime uses those definitions only
(``pinned``), so nothing a later tool version says, released or not, reaches the runs of an approved agent version.
"""

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from agents import http_tools
from agents.models import HTTP_METHODS, Tool, ToolKind
from agents.spec import script_call_errors
from agents.tools import RISKS, SIDE_EFFECTS, ToolFailure, ToolSpec
from governance import selectors
from governance.models import LabelPointer, Version
from governance.policies import ConditionError, compile_condition

TOOL_KIND = "tool"
HTTP_FIELDS = ("method", "url_template", "headers", "allowed_hosts", "allow_private", "secret_headers")
_CEL = {"type": "string", "minLength": 1, "maxLength": 4000}

TOOL_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Tool definition",
    "type": "object",
    "additionalProperties": False,
    "required": ["kind", "description", "parameters", "side_effect", "risk", "idempotent", "timeout_seconds"],
    "properties": {
        "kind": {"enum": [ToolKind.PYTHON.value, ToolKind.HTTP.value]},
        "description": {"type": "string", "minLength": 1, "maxLength": 4000},
        "parameters": {"type": "object", "description": "JSON Schema (draft 2020-12) of the arguments."},
        "side_effect": {"enum": list(SIDE_EFFECTS)},
        "risk": {"enum": list(RISKS)},
        "idempotent": {"type": "boolean"},
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
        "compensation": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["tool", "arguments"],
                    "properties": {
                        "tool": {"type": "string", "minLength": 1, "maxLength": 100},
                        "arguments": {"type": "object", "additionalProperties": _CEL},
                    },
                },
            ]
        },
        "method": {"enum": list(HTTP_METHODS)},
        "url_template": {"type": "string", "minLength": 1, "maxLength": 1000},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "allowed_hosts": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
        "allow_private": {"type": "boolean"},
        "secret_headers": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": "The names of the headers whose values are stored encrypted on the tool, never here.",
        },
    },
    "if": {"properties": {"kind": {"const": ToolKind.HTTP.value}}},
    "then": {"required": ["method", "url_template", "allowed_hosts"]},
    "else": {"not": {"anyOf": [{"required": [name]} for name in HTTP_FIELDS]}},
}


@dataclass(frozen=True)
class ToolDefinition:
    """One version of a tool's definition, as the runtime uses it."""

    name: str
    version: int
    kind: str
    description: str
    parameters: dict[str, Any]
    side_effect: str
    risk: str
    idempotent: bool
    timeout_seconds: float
    compensation: dict[str, Any] | None = None
    method: str = ""
    url_template: str = ""
    headers: dict[str, str] | None = None
    allowed_hosts: tuple[str, ...] = ()
    allow_private: bool = False
    secret_headers: tuple[str, ...] = ()


def definition(name: str, number: int, spec: dict[str, Any]) -> ToolDefinition:
    """Version ``number`` of the tool ``name``, from its spec."""
    return ToolDefinition(
        name=name,
        version=number,
        kind=spec["kind"],
        description=spec["description"],
        parameters=spec["parameters"],
        side_effect=spec["side_effect"],
        risk=spec["risk"],
        idempotent=spec["idempotent"],
        timeout_seconds=float(spec["timeout_seconds"]),
        compensation=spec.get("compensation"),
        method=spec.get("method", ""),
        url_template=spec.get("url_template", ""),
        headers=dict(spec.get("headers") or {}),
        allowed_hosts=tuple(spec.get("allowed_hosts") or ()),
        allow_private=bool(spec.get("allow_private", False)),
        secret_headers=tuple(spec.get("secret_headers") or ()),
    )


def code_spec(spec: ToolSpec) -> dict[str, Any]:
    """The definition a tool registered in code declares, as the spec of a ``tool`` version."""
    return {
        "kind": ToolKind.PYTHON.value,
        "description": spec.description,
        "parameters": spec.parameters,
        "side_effect": spec.side_effect,
        "risk": spec.risk,
        "idempotent": spec.idempotent,
        "timeout_seconds": spec.timeout,
        "compensation": spec.compensation.as_dict() if spec.compensation else None,
    }


# --- validation (the kind's validators) ----------------------------------------------------------------------------


def validate_tool(spec: Any) -> dict[str, list[str]]:
    """Field errors of a tool spec that satisfies the schema: the argument schema is a JSON Schema, compensation
    arguments compile, and an HTTP tool's URL names only arguments of its schema and an allowed host."""
    errors: dict[str, list[str]] = {}
    try:
        jsonschema.Draft202012Validator.check_schema(spec["parameters"])
    except jsonschema.SchemaError as error:
        errors["parameters"] = [f"Not a JSON Schema: {error.message}"]
    for name, expression in ((spec.get("compensation") or {}).get("arguments") or {}).items():
        try:
            compile_condition(expression)
        except ConditionError as error:
            errors.setdefault(f"compensation.arguments.{name}", []).append(f"the expression does not compile: {error}")
    if spec["kind"] == ToolKind.HTTP:
        for path, messages in _http_errors(spec).items():
            errors.setdefault(path, []).extend(messages)
    return errors


def _http_errors(spec: dict[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    template = spec["url_template"]
    properties = spec["parameters"].get("properties") or {}
    missing = [name for name in http_tools.url_placeholders(template) if name not in properties]
    if missing:
        errors["url_template"] = [f"The URL names arguments the schema does not have: {', '.join(missing)}."]
    host = urlsplit(template.replace("{", "").replace("}", "")).hostname or ""
    if not http_tools.host_allowed(host, spec["allowed_hosts"]):
        errors.setdefault("url_template", []).append(f"The host {host!r} is not an allowed host.")
    return errors


# --- pinning (the agent kind's pins) -------------------------------------------------------------------------------


def _released(names: set[str], label: str) -> dict[str, Version]:
    pointers = LabelPointer.objects.filter(
        object__kind=TOOL_KIND, object__slug__in=names, label__name=label
    ).select_related("object", "version")
    return {pointer.object.slug: pointer.version for pointer in pointers}


def _pin(version: Version) -> dict[str, Any]:
    slug, number = version.object.slug, version.number
    return {"kind": TOOL_KIND, "slug": slug, "version": number, "id": version.pk, "checksum": version.checksum}


def agent_pins(spec: dict[str, Any], label: str) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The tool versions an agent spec is approved with: for each grant, the version of the tool released under
    ``label`` and that of its compensating tool (which undoes its calls whether or not it is granted). A tool with no
    version released under ``label`` is an error naming the grant, and so is a scripted call those versions' schemas
    would refuse every time."""
    grants = [grant["tool"] for grant in spec.get("grants") or []]
    found = _released(set(grants), label)
    errors: dict[str, list[str]] = {}
    undoers: dict[str, list[int]] = {}
    for index, name in enumerate(grants):
        version = found.get(name)
        if version is None:
            errors.setdefault(f"grants[{index}].tool", []).append(f"{name} has no version released under {label}.")
        elif (version.spec.get("compensation") or {}).get("tool"):
            undoers.setdefault(version.spec["compensation"]["tool"], []).append(index)
    found.update(_released(set(undoers) - set(found), label))
    for undoer, indexes in undoers.items():
        if undoer not in found:
            for index in indexes:
                errors.setdefault(f"grants[{index}].tool", []).append(
                    f"{grants[index]} is undone by {undoer}, which has no version released under {label}."
                )
    parameters = {name: version.spec["parameters"] for name, version in found.items()}
    for path, messages in script_call_errors(spec, parameters).items():
        errors.setdefault(path, []).extend(messages)
    return [_pin(found[name]) for name in sorted(found)], errors


# --- reading pinned and released definitions ------------------------------------------------------------------------

_PINNED_LIMIT = 1024
_pinned: dict[int, dict[str, ToolDefinition]] = {}


def pinned(agent_version_id: int, pins: list[dict[str, Any]] | None = None) -> dict[str, ToolDefinition]:
    """The tool definitions an agent version pins, by tool name (immutable: read once per process); ``pins``: the
    version's, when the caller has them already."""
    if agent_version_id not in _pinned:
        if pins is None:
            pins = Version.objects.filter(pk=agent_version_id).values_list("pins", flat=True).first() or []
        ids = [pin["id"] for pin in pins if pin["kind"] == TOOL_KIND]
        found = {name: definition(name, number, spec) for name, number, spec in selectors.frozen_versions(ids)}
        if len(_pinned) >= _PINNED_LIMIT:
            _pinned.pop(next(iter(_pinned)))
        _pinned[agent_version_id] = found
    return _pinned[agent_version_id]


def forget_pinned(sender: Any, instance: Version, **kwargs: Any) -> None:
    """A saved version may reuse the id of one remembered (a rolled-back transaction frees ids on some databases):
    connected to ``post_save`` of ``Version`` in ``AgentsConfig.ready``."""
    _pinned.pop(instance.pk, None)


def released_version(name: str, label: str = "production") -> Version | None:
    """The version of the tool ``name`` released under ``label``, or None (nothing released there)."""
    return _released({name}, label).get(name)


DEFINITION_KEYS = ("description", "parameters", "side_effect", "risk", "idempotent", "timeout_seconds", "compensation")


def shown(names: list[str], label: str) -> dict[str, dict[str, Any]]:
    """For the API: each tool's definition as released under ``label`` (None for each field when nothing is), the
    request of an HTTP tool's, and where every label points. Two queries for any number of tools."""
    pointers = LabelPointer.objects.filter(object__kind=TOOL_KIND, object__slug__in=names).select_related(
        "object", "label", "version"
    )
    labels: dict[str, dict[str, int]] = {name: {} for name in names}
    chosen: dict[str, Version] = {}
    for pointer in pointers:
        labels[pointer.object.slug][pointer.label.name] = pointer.version.number
        if pointer.label.name == label:
            chosen[pointer.object.slug] = pointer.version
    result = {}
    for name in names:
        version = chosen.get(name)
        spec = version.spec if version else {}
        request = {key: spec.get(key) for key in HTTP_FIELDS} if spec.get("kind") == ToolKind.HTTP else None
        definition = {key: spec.get(key) for key in DEFINITION_KEYS}
        number = version.number if version else None
        result[name] = {"label": label, "version": number, "labels": labels[name], "request": request, **definition}
    return result


def secret_headers(tool: Tool, pinned_names: tuple[str, ...]) -> dict[str, str]:
    """The stored values of the secret headers a definition names; a name with no stored value fails the call."""
    stored = http_tools.stored_secrets(tool)
    missing = [name for name in pinned_names if name not in stored]
    if missing:
        raise ToolFailure(f"the secret header {missing[0]} is no longer stored on the tool")
    return {name: stored[name] for name in pinned_names}
