"""Agents in the console: tools, agent definitions (the shared governed pages), and runs with their timeline.

A run's page shows each step with its duration, tokens, cost, arguments, result, and the approvals with who
decided; Operators cancel and compensate from it, through the same services as the API. A live run's page
refreshes itself until the run ends.
"""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import JSONField, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from agents import http_tools, services, tool_versions
from agents.models import FINISHED_RUN_STATUSES, HTTP_METHODS, AgentDefinition, Run, RunStatus, Step, Tool, ToolKind
from agents.tool_versions import TOOL_KIND
from agents.tools import RISKS, SIDE_EFFECTS
from config.changelists import LargeTableAdmin
from config.errors import DomainError
from config.lookups import object_or_404
from governance.admin import GovernedObjectAdmin, ReadOnly, console_user, report_error
from governance.admin_filters import LabelFilter
from governance.models import GovernedObject, LabelPointer, ReviewItem, ReviewKind, Version
from governance.registry import ReviewPage, register_review_page


@admin.register(AgentDefinition)
class AgentDefinitionAdmin(GovernedObjectAdmin):
    kind = services.AGENT_KIND


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


def render_timeline(run: Run) -> str:
    """Each step of the run with its duration, tokens, cost, arguments and result, and who decided approvals."""
    rows = []
    for step in run.steps.select_related("review", "compensates").prefetch_related("review__decisions"):
        decided = ""
        if step.review is not None:
            link = reverse("admin:governance_reviewitem_change", args=[step.review.pk])
            who = "; ".join(f"{d.decider_label} ({d.decider_roles}) {d.decision}d" for d in step.review.decisions.all())
            decided = format_html('<a href="{}">{}</a> {}', link, step.review.get_status_display(), who)
        rows.append(
            (
                step.seq,
                step.get_kind_display(),
                step.status,
                step.detail.get("tool_name", ""),
                f"{step.duration_ms} ms" if step.duration_ms is not None else "…",
                step.tokens or "",
                step.cost or "",
                _json(step.arguments),
                _json(step.result) or step.error or step.detail.get("text", ""),
                decided,
            )
        )
    if not rows:
        return "No steps yet."
    return format_html(
        '<table class="timeline"><tr><th>#</th><th>step</th><th>status</th><th>tool</th><th>took</th>'
        "<th>tokens</th><th>cost</th><th>arguments</th><th>result / error</th><th>approval</th></tr>{}</table>",
        format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
            rows,
        ),
    )


class RunActionForm(forms.Form):
    reason = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 80}),
        help_text="Why: recorded in the audit trail. Required to compensate.",
    )


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False)[:2000]


@admin.register(Run)
class RunAdmin(LargeTableAdmin, ReadOnly):
    list_display = (
        "short_id",
        "agent",
        "version_number",
        "status",
        "requested_by",
        "steps_used",
        "tokens_used",
        "cost_used",
        "created_at",
    )
    # A large table (LargeTableAdmin): labels from the labels table and a date filter, not a SELECT DISTINCT
    # over every row for the labels' choices, nor a date_hierarchy (which reads every row's date).
    list_filter = ("status", LabelFilter, "agent", "created_at")
    list_select_related = ("agent", "version", "requested_by")
    search_fields = ("id", "agent__slug", "requested_by__username", "idempotency_key")
    list_defer = ("input", "result", "policy_versions", "agent__draft", "version__spec", "version__checks")
    change_form_template = "admin/agents/run_change_form.html"
    fields = (
        "agent",
        "version_number",
        "label",
        "status",
        "requested_by",
        "origin",
        "input_pretty",
        "result_pretty",
        "error",
        "steps_used",
        "tokens_used",
        "cost_used",
        "budget_extensions",
        "correlation_id",
        "created_at",
        "started_at",
        "finished_at",
        "timeline",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Run]:
        return super().get_queryset(request).select_related("agent", "version", "requested_by")

    @admin.display(description="run", ordering="id")
    def short_id(self, run: Run) -> str:
        return str(run.pk)[:8]

    @admin.display(description="version", ordering="version__number")
    def version_number(self, run: Run) -> str:
        return f"v{run.version.number}"

    @admin.display(description="input")
    def input_pretty(self, run: Run) -> str:
        return format_html("<pre>{}</pre>", json.dumps(run.input, indent=2, ensure_ascii=False))

    @admin.display(description="result")
    def result_pretty(self, run: Run) -> str:
        return format_html("<pre>{}</pre>", json.dumps(run.result, indent=2, ensure_ascii=False)) if run.result else "—"

    @admin.display(description="timeline")
    def timeline(self, run: Run) -> str:
        return render_timeline(run)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        run = object_or_404(self.get_queryset(request), pk=object_id)
        user = request.user
        can_cancel = user.has_perm("agents.cancel_run") and run.status not in FINISHED_RUN_STATUSES
        can_compensate = user.has_perm("agents.compensate_run") and run.status in (
            RunStatus.SUCCEEDED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
            RunStatus.TIMED_OUT,
        )
        form = RunActionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            reason = form.cleaned_data["reason"]
            try:
                if "_cancel" in request.POST:
                    services.run_cancel(actor=console_user(request), run=run, reason=reason)
                    messages.success(request, "The run is cancelled (a running one stops at its next step).")
                elif "_compensate" in request.POST:
                    services.run_compensate(actor=console_user(request), run=run, reason=reason)
                    messages.success(request, "Compensation started: the undo steps appear in the timeline.")
            except DomainError as error:
                report_error(request, error)
            return HttpResponseRedirect(request.path)
        extra = {
            **(extra_context or {}),
            "action_form": form,
            "can_cancel": can_cancel,
            "can_compensate": can_compensate,
            "live": run.status not in FINISHED_RUN_STATUSES,
        }
        return super().change_view(request, object_id, form_url, extra_context=extra)


def pinned_tool(step: Step) -> str:
    """The tool of a run's step, as its agent version pins it: version, side effect, risk and, for an HTTP tool,
    the method and URL template it calls."""
    version = step.run.version
    pinned = tool_versions.pinned(version.pk, version.pins).get(step.detail.get("tool_name", ""))
    if pinned is None:
        return ""
    request = format_html(": <code>{} {}</code>", pinned.method, pinned.url_template) if pinned.method else ""
    said = f"{pinned.name} v{pinned.version} ({pinned.side_effect}, {pinned.risk} risk)"
    return format_html("<p>The tool as agent v{} pins it: {}{}</p>", version.number, said, request)


def _approval_details(item: ReviewItem) -> str:
    step = services.approval_step(item)
    run_url = reverse("admin:agents_run_change", args=[step.run_id])
    return format_html(
        '{}<p>Run <a href="{}">{}</a>, started by {}: its timeline so far.</p>{}',
        pinned_tool(step),
        run_url,
        str(step.run_id)[:8],
        step.run.requested_by.get_username(),
        render_timeline(step.run),
    )


def _overrun_details(item: ReviewItem) -> str:
    step = Step.objects.select_related("run", "run__requested_by").get(pk=item.subject_id)
    payload = item.payload
    return format_html(
        '<p>Run <a href="{}">{}</a>, started by {}: its {} budget is {} ({} used). Approving grants {} more, once;'
        " rejecting ends the run.</p>{}",
        reverse("admin:agents_run_change", args=[step.run_id]),
        str(step.run_id)[:8],
        step.run.requested_by.get_username(),
        payload.get("budget", ""),
        payload.get("limit", ""),
        payload.get("used", ""),
        payload.get("extension", ""),
        render_timeline(step.run),
    )


def _editable_arguments(item: ReviewItem) -> dict[str, Any] | None:
    if item.payload.get("question") != "approval":
        return None
    arguments: dict[str, Any] = item.payload.get("arguments") or {}
    return arguments


register_review_page(ReviewKind.BUDGET_OVERRUN, ReviewPage(details=_overrun_details))
register_review_page(
    ReviewKind.TOOL_APPROVAL,
    ReviewPage(details=_approval_details, editable=_editable_arguments, decide=services.approval_decide),
)
