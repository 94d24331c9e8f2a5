"""Tools: the tools registered in code synced (their definitions submitted for review as versions of kind
``tool``), and HTTP tools configured in the console, likewise."""

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from agents import http_tools, tool_versions, tools
from agents.models import Tool, ToolKind
from agents.services.common import require
from audit.context import Actor
from audit.services import audit_record
from config.errors import Conflict, DomainError
from governance import services as governance_services
from governance.models import (
    GovernedObject,
    Version,
    VersionStatus,
)
from governance.registry import get_kind
from governance.services import audit_actor


@transaction.atomic
def tools_sync(*, actor: Actor) -> dict[str, list[str]]:
    """Write every tool registered in code to the ``Tool`` table and its definition into the draft of its governed
    object (kind ``tool``), as the system ``actor``. A definition that differs from the tool's latest version is
    submitted for review: nothing an agent uses changes until a version is approved and released (and an agent
    version pins it). Tools whose code is gone become unavailable; an HTTP tool's definition carried over from
    before tools were versioned, never submitted, is submitted too. A definition the kind refuses is reported."""
    now = timezone.now()
    registered = tools.registered()
    changes: dict[str, list[str]] = {"created": [], "submitted": [], "retired": [], "refused": []}
    for name, spec in sorted(registered.items()):
        tool, created = Tool.objects.get_or_create(
            name=name, defaults={"kind": ToolKind.PYTHON, "synced_at": now, "updated_at": now}
        )
        if created:
            changes["created"].append(name)
        elif not tool.available or tool.kind != ToolKind.PYTHON:
            tool.kind, tool.available, tool.synced_at, tool.updated_at = ToolKind.PYTHON, True, now, now
            tool.save(update_fields=["kind", "available", "synced_at", "updated_at"])
        _propose(actor, name, tool_versions.code_spec(spec), changes)
    for tool in Tool.objects.filter(kind=ToolKind.PYTHON, available=True).exclude(name__in=list(registered)):
        tool.available, tool.updated_at = False, now
        tool.save(update_fields=["available", "updated_at"])
        changes["retired"].append(tool.name)
    carried = GovernedObject.objects.filter(kind=tool_versions.TOOL_KIND, versions__isnull=True).exclude(
        slug__in=list(registered)
    )
    for obj in carried.filter(slug__in=Tool.objects.filter(kind=ToolKind.HTTP).values("name")):
        _propose(actor, obj.slug, obj.draft, changes)
    if any(changes.values()):
        audit_record(actor=actor, action="agent.tools.synced", target=None, details=changes)
    return changes


def _propose(actor: Actor, name: str, definition: dict[str, Any], changes: dict[str, list[str]]) -> None:
    """Write ``definition`` into the tool's draft and submit it as the system unless the latest version has it."""
    try:
        with transaction.atomic():
            obj = governance_services.draft_write_by_system(
                actor=actor, kind=tool_versions.TOOL_KIND, slug=name, name=name, draft=definition
            )
            latest = obj.versions.order_by("-number").first()
            if latest is None or latest.checksum != governance_services.spec_checksum(definition):
                governance_services.version_submit_by_system(actor=actor, obj=obj, note="Synced from code.")
                changes["submitted"].append(name)
    except DomainError as error:
        problems = "; ".join(f"{path}: {' '.join(messages)}" for path, messages in error.fields.items())
        changes["refused"].append(f"{name}: {error.message} {problems}".strip())


# Where the console's form calls a definition's fields (``http_method``), when it names them otherwise.
FORM_FIELDS = {"method": "http_method"}


def _http_definition(values: dict[str, Any], secret_names: list[str]) -> dict[str, Any]:
    return {
        "kind": ToolKind.HTTP.value,
        "description": values["description"],
        "parameters": values.get("parameters") or {},
        "side_effect": values["side_effect"],
        "risk": values["risk"],
        "idempotent": values["idempotent"],
        "timeout_seconds": values["timeout_seconds"],
        "compensation": None,
        "method": values["http_method"],
        "url_template": values["url_template"],
        "headers": values.get("headers") or {},
        "allowed_hosts": values.get("allowed_hosts") or [],
        "allow_private": values["allow_private"],
        "secret_headers": secret_names,
    }


@transaction.atomic
def http_tool_save(
    *, actor: User, tool: Tool | None, values: dict[str, Any], secret_headers: dict[str, str] | None
) -> tuple[Tool, Version | None]:
    """Create or change an HTTP tool (Admins). Its definition goes into the draft of its governed object (kind
    ``tool``) and is submitted for review as a new version, which someone who did not edit it approves; nothing an
    agent uses changes until then, and only agent versions submitted after its release pin it. Returns the tool and
    the version submitted (None when the definition is the latest version's already).

    ``secret_headers`` replaces the stored values (None keeps them): they are stored encrypted on the tool, never in
    a version, which names them only; a changed value is in effect at once (a credential, not behaviour). The trail
    records header names, never values."""
    require(actor, "agents.change_tool" if tool else "agents.add_tool", "configure tools")
    name = tool.name if tool else values["name"]
    if tool is None and Tool.objects.filter(name=name).exists():
        raise Conflict(f"A tool called {name!r} exists already.", fields={"name": ["Already used."]})
    stored = http_tools.stored_secrets(tool) if tool and secret_headers is None else secret_headers or {}
    definition = _http_definition(values, sorted(stored))
    errors = get_kind(tool_versions.TOOL_KIND).validate(definition)
    if errors:
        fields = {FORM_FIELDS.get(path, path) or "__all__": messages for path, messages in errors.items()}
        raise DomainError("The HTTP tool is not valid.", fields=fields)
    created = tool is None
    if tool is None:
        tool = Tool.objects.create(name=name, kind=ToolKind.HTTP)
    if secret_headers is not None:
        tool.secret_headers = http_tools.encrypt_headers(secret_headers)
    tool.updated_at = timezone.now()
    tool.save(update_fields=["secret_headers", "updated_at"])
    version = _http_definition_submit(actor, name, definition)
    audit_record(
        actor=audit_actor(actor),
        action=f"agent.tool.{'created' if created else 'updated'}",
        target=tool,
        details={
            "kind": "http",
            "method": definition["method"],
            "url_template": definition["url_template"],
            "allowed_hosts": definition["allowed_hosts"],
            "allow_private": definition["allow_private"],
            "headers": sorted(definition["headers"]),
            "secret_headers": definition["secret_headers"],
            "secret_headers_changed": secret_headers is not None,
            "version": version.number if version else None,
        },
    )
    return tool, version


def _http_definition_submit(actor: User, name: str, definition: dict[str, Any]) -> Version | None:
    """Put ``definition`` in the tool's draft (created with it) and submit it, unless a version pending or approved
    has it already."""
    obj = GovernedObject.objects.filter(kind=tool_versions.TOOL_KIND, slug=name).first()
    if obj is None:
        obj = governance_services.governed_object_create(
            actor=actor, kind=tool_versions.TOOL_KIND, slug=name, name=name, draft=definition
        )
    else:
        obj = governance_services.draft_update(actor=actor, obj=obj, draft=definition)
    latest = obj.versions.order_by("-number").first()
    checksum = governance_services.spec_checksum(definition)
    if latest and latest.checksum == checksum and latest.status in (VersionStatus.PENDING, VersionStatus.APPROVED):
        return None
    return governance_services.version_submit(actor=actor, obj=obj, note="Edited in the console.")
