"""Runs in the console, with their timeline: each step with its duration, tokens, cost, arguments, result, and
the approvals with who decided; Operators cancel and compensate from it, through the same services as the API. A
live run's page refreshes itself until the run ends. The approval pages of runs' review items too."""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from agents import services, tool_versions
from agents.models import FINISHED_RUN_STATUSES, Run, RunStatus, Step
from config.changelists import LargeTableAdmin
from config.errors import DomainError
from config.lookups import object_or_404
from governance.admin import ReadOnly, console_user, report_error
from governance.admin_filters import LabelFilter
from governance.models import ReviewItem, ReviewKind
from governance.registry import ReviewPage, register_review_page


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
