"""The review queue: everything a person must decide, filtered by age, with what exactly is decided, the
checks and diff of a version, the decisions so far, and the form to approve, reject or approve with edited
arguments; plus the summary at the head of a tool approval's page."""

import copy
import datetime as dt
import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from config.errors import DomainError
from config.lookups import object_or_404
from governance import selectors, services
from governance.admin.base import DecideForm, ReadOnly, console_user, report_error
from governance.admin.render import render_checks, render_diff
from governance.models import (
    Decision,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
)
from governance.registry import review_page


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"
    AGES = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1), "week": dt.timedelta(days=7)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("hour", "older than an hour"),
            ("day", "older than a day"),
            ("week", "older than a week"),
            ("overdue", "overdue"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        if self.value() == "overdue":
            return queryset.filter(status=ReviewStatus.PENDING, due_at__lt=now)
        age = self.AGES.get(self.value() or "")
        return queryset.filter(created_at__lt=now - age) if age else queryset


@admin.register(ReviewItem)
class ReviewItemAdmin(ReadOnly):
    """The review queue: everything a person must decide, pending first by default, oldest due first."""

    list_display = ("__str__", "kind", "risk", "status", "requested_by_label", "age", "due_at", "overdue_flag")
    list_filter = ("kind", "status", "risk", AgeFilter)
    search_fields = ("subject_label", "reason", "requested_by_label")
    change_form_template = "admin/governance/review_change_form.html"
    readonly_fields = (
        "kind",
        "subject_link",
        "reason",
        "raised_by",
        "risk",
        "requested_by_label",
        "approvals_required",
        "status",
        "created_at",
        "due_at",
        "decided_at",
        "shown",
        "decisions_table",
        "checks_table",
        "diff_table",
    )
    exclude = ("payload", "digest", "version", "subject_type", "subject_id", "requested_by")

    @admin.display(description="overdue", boolean=True)
    def overdue_flag(self, item: ReviewItem) -> bool:
        return item.overdue

    @admin.display(description="age", ordering="created_at")
    def age(self, item: ReviewItem) -> str:
        return timesince(item.created_at)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        """The queue opens on what is pending; the status filter shows the rest."""
        if not request.GET and request.method == "GET":
            return HttpResponseRedirect(f"{request.path}?status__exact={ReviewStatus.PENDING}")
        return super().changelist_view(request, extra_context)

    @admin.display(description="what is decided")
    def shown(self, item: ReviewItem) -> str:
        """Exactly what the decision is bound to (its digest covers this): for a tool call, the tool, its
        arguments and the agent version."""
        return format_html("<pre>{}</pre>", json.dumps(selectors.review_shown(item), indent=2, ensure_ascii=False))

    @admin.display(description="subject")
    def subject_link(self, item: ReviewItem) -> str:
        """The subject's own console page, where it is answered (a conversation) or shown (a version)."""
        app_label, _, model = item.subject_type.partition(".")
        try:
            url = reverse(f"admin:{app_label}_{model}_change", args=[item.subject_id])
        except NoReverseMatch:
            return item.subject_label
        return format_html('<a href="{}">{}</a>', url, item.subject_label)

    @admin.display(description="decisions")
    def decisions_table(self, item: ReviewItem) -> str:
        rows = [
            (d.decider_label, d.decider_roles, d.decision, d.comment, d.created_at.strftime("%Y-%m-%d %H:%M"))
            for d in item.decisions.all()
        ]
        if not rows:
            return "None yet."
        return format_html_join("", "<p>{} ({}) {}d: {} <small>{}</small></p>", rows)

    @admin.display(description="checks")
    def checks_table(self, item: ReviewItem) -> str:
        return render_checks(item.version.checks) if item.version else "—"

    @admin.display(description="diff against the released version")
    def diff_table(self, item: ReviewItem) -> str:
        diff = selectors.review_diff(item)
        if diff is None:
            return "—"
        against = f"v{diff['from']}" if diff["from"] else "nothing released yet"
        return format_html("<p>Against {} under {}:</p>{}", against, diff["label"], render_diff(diff["changes"]))

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        item = object_or_404(ReviewItem.objects.all(), pk=object_id)
        page = review_page(item.kind)
        answered_at = page.answered_at(item) if page.answered_at else ""
        can_decide = (
            request.user.has_perm("governance.decide_reviewitem")
            and not answered_at
            and item.status == ReviewStatus.PENDING
            and not selectors.own_work(request.user, item)
        )
        editable = page.editable(item) if page.editable and can_decide else None
        shown_digest = selectors.review_digest(item)
        form = DecideForm(request.POST or None, initial={"digest": shown_digest, "arguments": editable})
        if editable is None:
            del form.fields["arguments"]
        if request.method == "POST":
            decision = next((d for d in ("approve", "reject", "edit") if f"_{d}" in request.POST), "")
            if decision and form.is_valid():
                decide = page.decide or services.review_decide
                choice = {"arguments": form.cleaned_data.get("arguments")} if decision == "edit" else {}
                try:
                    decide(
                        actor=console_user(request),
                        item=item,
                        decision=decision,
                        digest=form.cleaned_data["digest"],
                        comment=form.cleaned_data["comment"],
                        **choice,
                    )
                except DomainError as error:
                    report_error(request, error)
                else:
                    said = "approved with edited arguments" if decision == "edit" else f"{decision}d"
                    messages.success(request, f"You {said} {item}.")
                return HttpResponseRedirect(request.path)
        extra = {
            **(extra_context or {}),
            "decide_form": form,
            "can_decide": can_decide,
            "editable": editable is not None,
            "answered_at": answered_at,
            "details": page.details(item) if page.details else "",
            "own_request": selectors.own_work(request.user, item),
            "shown_digest": shown_digest,
            "summary": approval_summary(item, shown_digest),
        }
        # A decision in error (a JSON typo in the arguments) is shown again with its form errors: handed on as a
        # POST, the admin would take it for a change to this read-only item and refuse it (403).
        shown = request
        if request.method == "POST":
            shown = copy.copy(request)
            shown.method = "GET"
        return super().change_view(shown, object_id, form_url, extra_context=extra)


def tool_request(item: ReviewItem) -> dict[str, str] | None:
    """The HTTP request a tool approval's tool makes (method and URL template), as the decision is bound to it: the
    tool version the run's agent version pins puts it in the item's payload. None for a tool that is not HTTP."""
    request = item.payload.get("request")
    if not isinstance(request, dict) or not request.get("method"):
        return None
    return {"method": str(request["method"]), "url": str(request.get("url_template", ""))}


def approval_summary(item: ReviewItem, digest: str) -> dict[str, Any] | None:
    """What a tool approval asks, for the head of its page: the tool, its request, the arguments one a row, the risk,
    and how many of the approvals it needs are in (for what is shown now: an edit voids the approvals before it)."""
    if item.kind != ReviewKind.TOOL_APPROVAL or "tool" not in item.payload:
        return None
    arguments = item.payload.get("arguments") or {}
    return {
        "tool": item.payload["tool"],
        "request": tool_request(item),
        "arguments": [
            (name, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
            for name, value in sorted(arguments.items())
        ],
        "risk": item.risk,
        "approvals": item.decisions.filter(decision=Decision.APPROVE, digest=digest).count(),
        "required": item.approvals_required,
    }
