"""The versions' page: a submitted version, read-only, with its spec, checks, pins, diff and review, and
the release of an approved version under a label."""

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from config.errors import DomainError
from governance import selectors, services
from governance.admin.base import ReadOnly, ReleaseForm, console_user, report_error
from governance.admin.render import render_checks, render_diff
from governance.models import (
    Version,
)


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
