"""Governed configuration in the console: drafts, versions with diffs, the review queue, releases.

Every change goes through ``governance.services``: the console refuses exactly what the API refuses
(self-review, stale digests, failing checks, a role without the permission) and says why.
"""

import copy
import datetime as dt
import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from config.errors import DomainError
from config.lookups import object_or_404
from governance import selectors, services
from governance.models import (
    Decision,
    GovernedObject,
    GuardrailPolicy,
    Label,
    LabelPointer,
    Release,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
    Version,
    VersionStatus,
)
from governance.registry import review_page


def console_user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


class JSONTextarea(forms.Textarea):
    def format_value(self, value: Any) -> str:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return value
        return json.dumps(value, indent=2, ensure_ascii=False)


class DraftForm(forms.ModelForm):
    draft = forms.JSONField(
        widget=JSONTextarea(attrs={"rows": 24, "cols": 100, "class": "vLargeTextField"}),
        help_text="The spec being edited, as JSON. It is validated when you submit it for review.",
    )

    class Meta:
        model = GovernedObject
        fields = ["slug", "name", "draft"]

    def clean_draft(self) -> Any:
        draft = self.cleaned_data["draft"]
        if not isinstance(draft, dict):
            raise forms.ValidationError("The draft must be a JSON object.")
        return draft


class SubmitForm(forms.Form):
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="What changed, and why.")
    label = forms.ModelChoiceField(
        Label.objects.all(),
        to_field_name="name",
        initial="production",
        help_text="Where this version is meant to go; reviewers see the diff against it.",
    )


class ObjectRollbackForm(forms.Form):
    label = forms.ModelChoiceField(Label.objects.all(), to_field_name="name")
    version = forms.ModelChoiceField(Version.objects.none(), help_text="An earlier approved version.")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args: Any, obj: GovernedObject, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["version"].queryset = obj.versions.filter(status=VersionStatus.APPROVED)  # type: ignore[attr-defined]


class DecideForm(forms.Form):
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    digest = forms.CharField(widget=forms.HiddenInput)
    arguments = forms.JSONField(
        required=False,
        widget=JSONTextarea(attrs={"rows": 8, "cols": 80}),
        help_text="Change them and press “Approve with these arguments” to approve the call as edited.",
    )


class ReleaseForm(forms.Form):
    label = forms.ModelChoiceField(Label.objects.all(), to_field_name="name", initial="production")
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="What this release is for.")


class CompareForm(forms.Form):
    old = forms.ModelChoiceField(Version.objects.none(), label="from", to_field_name="number")
    new = forms.ModelChoiceField(Version.objects.none(), label="to", to_field_name="number")

    def __init__(self, *args: Any, obj: GovernedObject, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        versions = obj.versions.order_by("-number")
        self.fields["old"].queryset = versions  # type: ignore[attr-defined]
        self.fields["new"].queryset = versions  # type: ignore[attr-defined]


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


def report_error(request: HttpRequest, error: DomainError) -> None:
    details = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.fields.items())
    messages.error(request, f"{error.message} {details}".strip())


class GovernedObjectAdmin(admin.ModelAdmin):
    """Base for each governed kind's page (a proxy model per kind). Subclasses set ``kind``."""

    kind = ""
    form = DraftForm
    list_display = ("slug", "name", "labels", "latest_version", "draft_updated_at")
    search_fields = ("slug", "name")
    readonly_fields = ("current_labels", "draft_validation", "version_history")
    change_form_template = "admin/governance/governed_change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .filter(kind=self.kind)
            .prefetch_related("pointers__label", "pointers__version", "versions")
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("slug", *self.readonly_fields) if obj else ()

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("governance.view_governedobject")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("governance.add_governedobject")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("governance.change_governedobject")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # versions and releases refer to it; retire an object by releasing nothing

    @admin.display(description="labels")
    def labels(self, obj: GovernedObject) -> str:
        return ", ".join(f"{p.label.name} → v{p.version.number}" for p in obj.pointers.all()) or "—"

    @admin.display(description="latest version")
    def latest_version(self, obj: GovernedObject) -> str:
        versions = list(obj.versions.all())
        if not versions:
            return "—"
        latest = max(versions, key=lambda v: v.number)
        return f"v{latest.number} ({latest.get_status_display()})"

    @admin.display(description="current labels")
    def current_labels(self, obj: GovernedObject) -> str:
        return self.labels(obj)

    @admin.display(description="draft validation")
    def draft_validation(self, obj: GovernedObject) -> str:
        """What submitting the saved draft would say, so authors see problems before they submit."""
        result = selectors.draft_validation(obj)
        if not result["valid"]:
            rows = [
                (path or "(whole draft)", message)
                for path, messages in result["errors"].items()
                for message in messages
            ]
            return format_html(
                '<p class="errornote">The draft would be refused on submit:</p>'
                '<table class="validation"><tr><th>field</th><th>problem</th></tr>{}</table>',
                format_html_join("", "<tr><td><code>{}</code></td><td>{}</td></tr>", rows),
            )
        return format_html("<p>The draft is valid.</p>{}", render_checks(result["checks"]))

    @admin.display(description="versions")
    def version_history(self, obj: GovernedObject) -> str:
        rows = [
            (
                reverse("admin:governance_version_change", args=[v.pk]),
                v.number,
                v.get_status_display(),
                v.author_label,
                v.created_at.strftime("%Y-%m-%d %H:%M"),
                v.note,
            )
            for v in obj.versions.order_by("-number")
        ]
        if not rows:
            return "No versions yet."
        return format_html(
            "<table><tr><th>version</th><th>status</th><th>author</th><th>submitted</th><th>note</th></tr>{}</table>",
            format_html_join(
                "", '<tr><td><a href="{}">v{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>', rows
            ),
        )

    def save_model(self, request: HttpRequest, obj: GovernedObject, form: Any, change: bool) -> None:
        if change:
            services.draft_update(actor=console_user(request), obj=obj, name=obj.name, draft=obj.draft)
        else:
            created = services.governed_object_create(
                actor=console_user(request), kind=self.kind, slug=obj.slug, name=obj.name, draft=obj.draft
            )
            obj.pk, obj.kind = created.pk, created.kind
            obj._state.adding = False

    def get_urls(self) -> list[URLPattern]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("<int:pk>/submit/", self.admin_site.admin_view(self.submit_view), name=f"{prefix}_submit"),
            path("<int:pk>/rollback/", self.admin_site.admin_view(self.rollback_view), name=f"{prefix}_rollback"),
            path("<int:pk>/compare/", self.admin_site.admin_view(self.compare_view), name=f"{prefix}_compare"),
            *super().get_urls(),
        ]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        extra = {
            **(extra_context or {}),
            "can_submit": request.user.has_perm("governance.submit_version"),
            "can_release": request.user.has_perm("governance.release_version"),
            "can_rollback": request.user.has_perm("governance.rollback_version"),
        }
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def _page(
        self, request: HttpRequest, obj: GovernedObject, title: str, form: forms.Form, button: str
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": obj,
            "title": title,
            "form": form,
            "button": button,
        }
        return TemplateResponse(request, "admin/governance/action_form.html", context)

    def submit_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        obj = get_object_or_404(self.get_queryset(request), pk=pk)
        if not request.user.has_perm("governance.submit_version"):
            raise PermissionDenied
        form = SubmitForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                version = services.version_submit(
                    actor=console_user(request),
                    obj=obj,
                    note=form.cleaned_data["note"],
                    label=form.cleaned_data["label"].name,
                )
            except DomainError as error:
                report_error(request, error)
            else:
                messages.success(request, f"Submitted {version} for review.")
                return HttpResponseRedirect(reverse("admin:governance_version_change", args=[version.pk]))
        return self._page(request, obj, f"Submit {obj} for review", form, "Submit for review")

    def compare_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Any two versions side by side, field by field (line by line for long texts)."""
        obj = get_object_or_404(self.get_queryset(request), pk=pk)
        versions = list(obj.versions.order_by("-number")[:2])
        initial = {"new": versions[0].number, "old": versions[-1].number} if versions else {}
        form = CompareForm(request.GET or None, obj=obj, initial=initial)
        diff = ""
        if form.is_valid():
            old, new = form.cleaned_data["old"], form.cleaned_data["new"]
            diff = render_side_by_side(old, new, selectors.versions_diff(old, new)["changes"])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": obj,
            "title": f"Compare versions of {obj}",
            "form": form,
            "diff": diff,
        }
        return TemplateResponse(request, "admin/governance/compare.html", context)

    def rollback_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        obj = get_object_or_404(self.get_queryset(request), pk=pk)
        if not request.user.has_perm("governance.rollback_version"):
            raise PermissionDenied
        form = ObjectRollbackForm(request.POST or None, obj=obj)
        if request.method == "POST" and form.is_valid():
            try:
                services.label_rollback(
                    actor=console_user(request),
                    obj=obj,
                    label=form.cleaned_data["label"].name,
                    version=form.cleaned_data["version"],
                    reason=form.cleaned_data["reason"],
                )
            except DomainError as error:
                report_error(request, error)
            else:
                messages.success(
                    request, f"{obj} {form.cleaned_data['label']} now points at {form.cleaned_data['version']}."
                )
                return HttpResponseRedirect(
                    reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[pk])
                )
        return self._page(request, obj, f"Roll back a label of {obj}", form, "Roll back")


@admin.register(GuardrailPolicy)
class GuardrailPolicyAdmin(GovernedObjectAdmin):
    kind = "guardrail_policy"


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Version)
class VersionAdmin(ReadOnly):
    change_form_template = "admin/governance/version_change_form.html"
    list_display = ("__str__", "status", "author_label", "created_at", "decided_at")
    list_filter = ("status", "object__kind")
    list_select_related = ("object",)
    search_fields = ("object__slug", "note")
    readonly_fields = (
        "object",
        "number",
        "name",
        "status",
        "author_label",
        "note",
        "checksum",
        "created_at",
        "decided_at",
        "checks_table",
        "pins_table",
        "spec_pretty",
        "diff_table",
        "review_link",
    )
    exclude = ("spec", "checks", "author", "pins")

    @admin.display(description="spec")
    def spec_pretty(self, version: Version) -> str:
        return format_html("<pre>{}</pre>", json.dumps(version.spec, indent=2, ensure_ascii=False))

    @admin.display(description="checks")
    def checks_table(self, version: Version) -> str:
        return render_checks(version.checks)

    @admin.display(description="approved with")
    def pins_table(self, version: Version) -> str:
        """The versions of other objects this one pins (an agent version's tools), each linked."""
        if not version.pins:
            return "—"
        pinned = Version.objects.filter(pk__in=[pin["id"] for pin in version.pins]).select_related("object")
        url = "admin:governance_version_change"
        rows = [(reverse(url, args=[v.pk]), str(v)) for v in pinned.order_by("object__slug")]
        return format_html_join("", '<p><a href="{}">{}</a></p>', rows)

    @admin.display(description="changes since the previous version")
    def diff_table(self, version: Version) -> str:
        previous = version.object.versions.filter(number__lt=version.number).order_by("-number").first()
        return render_diff(selectors.versions_diff(previous, version)["changes"])

    def get_urls(self) -> list[URLPattern]:
        release = path(
            "<int:pk>/release/", self.admin_site.admin_view(self.release_view), name="governance_version_release"
        )
        return [release, *super().get_urls()]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        extra = {**(extra_context or {}), "can_release": request.user.has_perm("governance.release_version")}
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def release_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        version = get_object_or_404(Version.objects.select_related("object"), pk=pk)
        if not request.user.has_perm("governance.release_version"):
            raise PermissionDenied
        form = ReleaseForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            label = form.cleaned_data["label"].name
            try:
                release = services.release_create(
                    actor=console_user(request),
                    note=form.cleaned_data["note"],
                    moves=[services.Move(object=version.object, label=label, version=version)],
                )
            except DomainError as error:
                report_error(request, error)
            else:
                messages.success(request, f"Released {version} under {label}.")
                return HttpResponseRedirect(reverse("admin:governance_release_change", args=[release.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": version,
            "title": f"Release {version}",
            "form": form,
            "button": "Release",
        }
        return TemplateResponse(request, "admin/governance/action_form.html", context)

    @admin.display(description="review")
    def review_link(self, version: Version) -> str:
        item = version.reviews.order_by("-id").first()
        if item is None:
            return "—"
        url = reverse("admin:governance_reviewitem_change", args=[item.pk])
        return format_html('<a href="{}">{} ({})</a>', url, item, item.get_status_display())


def render_checks(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return "No checks for this kind."
    rows = [
        (c["name"], "passed" if c["passed"] else "FAILED", f"{f['severity']}: {f['path']} {f['message']}".strip())
        for c in checks
        for f in (c["findings"] or [{"severity": "", "path": "", "message": ""}])
    ]
    return format_html(
        '<table class="checks"><tr><th>check</th><th>result</th><th>finding</th></tr>{}</table>',
        format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
    )


def _side(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)


def render_side_by_side(old: Version, new: Version, changes: list[dict[str, Any]]) -> str:
    if not changes:
        return format_html("<p>v{} and v{} have the same spec.</p>", old.number, new.number)
    rows = []
    for change in changes:
        if "lines" in change:
            before = "\n".join(line for line in change["lines"][2:] if not line.startswith("+"))
            after = "\n".join(line for line in change["lines"][2:] if not line.startswith("-"))
        else:
            before, after = _side(change["old"]), _side(change["new"])
        rows.append((change["path"] or "(whole spec)", change["change"], before, after))
    return format_html(
        '<table class="diff side-by-side"><tr><th>field</th><th>change</th><th>v{}</th><th>v{}</th></tr>{}</table>',
        old.number, new.number,
        format_html_join("", "<tr><td><code>{}</code></td><td>{}</td><td><pre>{}</pre></td><td><pre>{}</pre></td></tr>",
                         rows),
    )  # fmt: skip


def render_diff(changes: list[dict[str, Any]]) -> str:
    if not changes:
        return "No changes."
    rows = []
    for change in changes:
        if "lines" in change:
            detail = format_html("<pre>{}</pre>", "\n".join(change["lines"]))
        else:
            detail = format_html(
                "<del>{}</del> → <ins>{}</ins>",
                json.dumps(change["old"], ensure_ascii=False),
                json.dumps(change["new"], ensure_ascii=False),
            )
        rows.append((change["path"] or "(whole spec)", change["change"], detail))
    return format_html(
        '<table class="diff"><tr><th>field</th><th>change</th><th>before → after</th></tr>{}</table>',
        format_html_join("", "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>", rows),
    )


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"
    AGES = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1), "week": dt.timedelta(days=7)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("hour", "older than an hour"), ("day", "older than a day"), ("week", "older than a week"),
                ("overdue", "overdue")]  # fmt: skip

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
    readonly_fields = ("kind", "subject_link", "reason", "raised_by", "risk", "requested_by_label",
                       "approvals_required", "status", "created_at", "due_at", "decided_at",
                       "shown", "decisions_table", "checks_table", "diff_table")  # fmt: skip
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
        rows = [(d.decider_label, d.decider_roles, d.decision, d.comment, d.created_at.strftime("%Y-%m-%d %H:%M"))
                for d in item.decisions.all()]  # fmt: skip
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


@admin.register(Release)
class ReleaseAdmin(ReadOnly):
    list_display = ("__str__", "note", "created_by", "created_at", "rolled_back_at")
    list_filter = ("kind",)
    list_select_related = ("created_by",)
    readonly_fields = ("kind", "note", "created_by", "created_at", "reverts", "rolled_back_at", "moves_table")
    change_form_template = "admin/governance/release_change_form.html"

    @admin.display(description="moves")
    def moves_table(self, release: Release) -> str:
        return format_html_join("", "<p>{}</p>", ((str(move),) for move in release.moves.all()))

    def get_urls(self) -> list[URLPattern]:
        rollback = path(
            "<int:pk>/rollback/", self.admin_site.admin_view(self.rollback_view), name="governance_release_rollback"
        )
        return [rollback, *super().get_urls()]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        extra = {**(extra_context or {}), "can_rollback": request.user.has_perm("governance.rollback_version")}
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def rollback_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        release = get_object_or_404(Release, pk=pk)
        if not request.user.has_perm("governance.rollback_version"):
            raise PermissionDenied
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                rollback = services.release_rollback(
                    actor=console_user(request), release=release, reason=form.cleaned_data["reason"]
                )
            except DomainError as error:
                report_error(request, error)
            else:
                messages.success(request, f"Rolled back {release}: {rollback} moved the labels back.")
                return HttpResponseRedirect(reverse("admin:governance_release_change", args=[rollback.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": release,
            "title": f"Roll back {release}",
            "form": form,
            "button": "Roll back",
        }
        return TemplateResponse(request, "admin/governance/action_form.html", context)


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "created_at")
    fields = ("name", "description")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Label, form: Any, change: bool) -> None:
        created = services.label_create(actor=console_user(request), name=obj.name, description=obj.description)
        obj.pk = created.pk
        obj._state.adding = False


@admin.register(LabelPointer)
class LabelPointerAdmin(ReadOnly):
    list_display = ("object", "label", "version", "release", "updated_at")
    list_filter = ("label", "object__kind")
    list_select_related = ("object", "label", "version", "release")
