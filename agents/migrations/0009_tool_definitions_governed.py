"""Tool definitions become governed configuration (kind ``tool``): the ``Tool`` row keeps only the identity (name,
kind, availability) and the encrypted secret headers. Each HTTP tool's definition is carried over as the draft of
its governed object, which ``tools_sync`` (after this migration) submits for review; Python tools' definitions are
written from code by that same sync."""

from typing import Any

from django.db import migrations

DEFINITION = (
    "description",
    "parameters",
    "side_effect",
    "risk",
    "idempotent",
    "timeout_seconds",
    "compensation",
    "http_method",
    "url_template",
    "headers",
    "allowed_hosts",
    "allow_private",
)


def carry_over(apps: Any, schema_editor: Any) -> None:
    from agents import http_tools

    Tool = apps.get_model("agents", "Tool")
    GovernedObject = apps.get_model("governance", "GovernedObject")
    for tool in Tool.objects.filter(kind="http"):
        draft = {
            "kind": "http",
            "description": tool.description,
            "parameters": tool.parameters,
            "side_effect": tool.side_effect,
            "risk": tool.risk,
            "idempotent": tool.idempotent,
            "timeout_seconds": tool.timeout_seconds,
            "compensation": None,
            "method": tool.http_method or "GET",
            "url_template": tool.url_template,
            "headers": tool.headers or {},
            "allowed_hosts": tool.allowed_hosts,
            "allow_private": tool.allow_private,
            "secret_headers": http_tools.secret_header_names(tool),
        }
        GovernedObject.objects.get_or_create(kind="tool", slug=tool.name, defaults={"name": tool.name, "draft": draft})


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0008_run_outcome"),
        ("governance", "0006_system_authors_pins"),
    ]

    operations = [
        migrations.RunPython(carry_over, migrations.RunPython.noop),
        *(migrations.RemoveField(model_name="tool", name=name) for name in DEFINITION),
    ]
