"""The governed objects' pages: ``GovernedObjectAdmin``, the base for each governed kind's page (edit the
draft, see it validated, submit it, compare versions, roll a label back), and the guardrail policies' page."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from config.errors import DomainError
from governance import selectors, services
from governance.admin.base import CompareForm, DraftForm, ObjectRollbackForm, SubmitForm, console_user, report_error
from governance.admin.render import render_checks, render_side_by_side
from governance.models import (
    GovernedObject,
    GuardrailPolicy,
)


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
