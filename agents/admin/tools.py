"""Tools in the console: each with its definitions as released, and HTTP tools configured through a form whose
definition is submitted for review like any other configuration."""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import JSONField, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from agents import http_tools, services, tool_versions
from agents.models import HTTP_METHODS, Tool, ToolKind
from agents.tool_versions import TOOL_KIND
from agents.tools import RISKS, SIDE_EFFECTS
from config.errors import DomainError
from governance.admin import console_user, report_error
from governance.models import GovernedObject, LabelPointer, Version

RISK_CHOICES = [(risk, risk) for risk in RISKS]
SIDE_EFFECT_CHOICES = [(effect, effect) for effect in SIDE_EFFECTS]
# The form's fields that are the definition's, by the definition's name where it differs.
DEFINITION_FIELDS = {
    "description": "description",
    "http_method": "method",
    "url_template": "url_template",
    "parameters": "parameters",
    "headers": "headers",
    "allowed_hosts": "allowed_hosts",
    "allow_private": "allow_private",
    "side_effect": "side_effect",
    "risk": "risk",
    "idempotent": "idempotent",
    "timeout_seconds": "timeout_seconds",
}


class HttpToolForm(forms.ModelForm):
    """An HTTP tool's definition, edited as its draft: saving submits it for review. Secret headers are write-only:
    the field is always empty; leave it empty to keep them."""

    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))
    http_method = forms.ChoiceField(label="method", choices=[(m, m) for m in HTTP_METHODS])
    url_template = forms.CharField(max_length=1000, help_text="{name} is replaced by the argument of that name.")
    parameters = forms.JSONField(initial=dict, help_text="JSON Schema of the arguments.")
    headers = forms.JSONField(
        required=False,
        initial=dict,
        help_text='Plain headers: {"X-Team": "ops"}; a value may read the server\'s environment: '
        '"Bearer {{env.ORDERS_TOKEN}}".',
    )
    allowed_hosts = forms.JSONField(help_text='Hosts the URL may name: ["api.example.com", "*.example.org"].')
    allow_private = forms.BooleanField(required=False, help_text="Allow private and loopback addresses.")
    side_effect = forms.ChoiceField(choices=SIDE_EFFECT_CHOICES)
    risk = forms.ChoiceField(choices=RISK_CHOICES)
    idempotent = forms.BooleanField(required=False, initial=True)
    timeout_seconds = forms.FloatField(initial=10.0, min_value=0.1, max_value=3600)
    new_secret_headers = forms.JSONField(
        required=False,
        label="secret headers",
        help_text="A JSON object of headers stored encrypted and never shown again; empty keeps the current ones.",
    )

    class Meta:
        model = Tool
        fields = ["name"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:  # what is edited is the draft: it may be ahead of what is released
            drafts = GovernedObject.objects.filter(kind=TOOL_KIND, slug=self.instance.name)
            spec = drafts.values_list("draft", flat=True).first() or {}
            for field, key in DEFINITION_FIELDS.items():
                if key in spec:
                    self.initial[field] = spec[key]

    def clean_new_secret_headers(self) -> dict[str, str] | None:
        value = self.cleaned_data.get("new_secret_headers")
        if value in (None, "", {}):
            return None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise forms.ValidationError("Write a JSON object of header names and text values.")
        return value


def _released_table(tool: Tool, label: str) -> str:
    version = tool_versions.released_version(tool.name, label)
    if version is None:
        return "Nothing released."
    rows = [(key, value if isinstance(value, str) else json.dumps(value)) for key, value in version.spec.items()]
    link = reverse("admin:governance_version_change", args=[version.pk])
    return format_html(
        '<p><a href="{}">v{}</a></p>{}', link, version.number, format_html_join("", "<p>{}: <code>{}</code></p>", rows)
    )


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin):
    """Tools: the identity here, the definition governed (kind ``tool``). Python tools' come from code and are
    read-only; Admins edit HTTP tools' definitions, which saving submits for review."""

    list_display = ("name", "kind", "production_version", "side_effect", "risk", "available")
    list_filter = ("kind", "available")
    search_fields = ("name",)
    form = HttpToolForm
    shown_fields = ("production_definition", "staging_definition", "versions")
    python_fields = ("name", "kind", "available", "synced_at", *shown_fields)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tool]:
        released = LabelPointer.objects.filter(
            object__kind=TOOL_KIND, object__slug=OuterRef("name"), label__name="production"
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                production_number=Subquery(released.values("version__number")[:1]),
                production_spec=Subquery(released.values("version__spec")[:1], output_field=JSONField()),
            )
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("agents.add_tool")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("agents.change_tool") and (obj is None or obj.kind == ToolKind.HTTP)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # steps refer to tools; take one out of use by revoking its grants

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.kind == ToolKind.PYTHON:
            return self.python_fields
        editable = ["name", *DEFINITION_FIELDS, "new_secret_headers"]
        return [*editable, *(["secret_names", *self.shown_fields] if obj else [])]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.kind == ToolKind.PYTHON:
            return self.python_fields
        return ("name", "secret_names", *self.shown_fields) if obj else ()

    @admin.display(description="production", ordering="production_number")
    def production_version(self, tool: Tool) -> str:
        number = getattr(tool, "production_number", None)
        return f"v{number}" if number else "—"

    @admin.display(description="side effect")
    def side_effect(self, tool: Tool) -> str:
        return str((getattr(tool, "production_spec", None) or {}).get("side_effect", "—"))

    @admin.display(description="risk")
    def risk(self, tool: Tool) -> str:
        return str((getattr(tool, "production_spec", None) or {}).get("risk", "—"))

    @admin.display(description="released under production")
    def production_definition(self, tool: Tool) -> str:
        return _released_table(tool, "production")

    @admin.display(description="released under staging")
    def staging_definition(self, tool: Tool) -> str:
        return _released_table(tool, "staging")

    @admin.display(description="versions")
    def versions(self, tool: Tool) -> str:
        rows = [
            (reverse("admin:governance_version_change", args=[v.pk]), v.number, v.get_status_display(), v.author_label)
            for v in Version.objects.filter(object__kind=TOOL_KIND, object__slug=tool.name).order_by("-number")
        ]
        if not rows:
            return "No versions yet."
        return format_html_join("", '<p><a href="{}">v{}</a> {} (by {})</p>', rows)

    @admin.display(description="secret headers stored")
    def secret_names(self, tool: Tool) -> str:
        return ", ".join(http_tools.secret_header_names(tool)) or "none"

    def save_model(self, request: HttpRequest, obj: Tool, form: Any, change: bool) -> None:
        values = {field: form.cleaned_data[field] for field in DEFINITION_FIELDS}
        values["name"] = form.cleaned_data.get("name") or obj.name
        saved, version = services.http_tool_save(
            actor=console_user(request),
            tool=Tool.objects.get(pk=obj.pk) if change else None,
            values=values,
            secret_headers=form.cleaned_data.get("new_secret_headers"),
        )
        obj.pk = saved.pk
        obj._state.adding = False
        if version is not None:
            said = "agents use it only once it is approved, released, and pinned by an agent version submitted then"
            messages.info(request, f"Submitted {version} for review: {said}.")

    def changeform_view(
        self, request: HttpRequest, object_id: Any = None, form_url: str = "", extra_context: Any = None
    ) -> Any:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as error:
            report_error(request, error)
            return HttpResponseRedirect(request.path)
