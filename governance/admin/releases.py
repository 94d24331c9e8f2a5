"""Releases and labels: the releases' page (with the rollback of a release), the labels' page (labels are
only created) and the read-only label pointers."""

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html_join

from config.errors import DomainError
from governance import services
from governance.admin.base import ReadOnly, ReasonForm, console_user, report_error
from governance.models import (
    Label,
    LabelPointer,
    Release,
)


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
