"""The audit trail in the console: read-only, filterable, with a "verify now" page."""

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from audit.context import Actor
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_chain_verify


class ReadOnlyAdmin(admin.ModelAdmin):
    """The trail is append-only: the console offers no add, change or delete."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ActionNamespaceFilter(admin.SimpleListFilter):
    title = "action namespace"
    parameter_name = "namespace"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        actions = AuditEvent.objects.order_by().values_list("action", flat=True).distinct()
        namespaces = sorted({action.split(".", 1)[0] for action in actions})
        return [(namespace, namespace) for namespace in namespaces]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        if self.value():
            return queryset.filter(action__startswith=f"{self.value()}.")
        return queryset


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("sequence", "created_at", "actor_label", "actor_type", "action", "target_type", "target_label")
    list_filter = ("actor_type", ActionNamespaceFilter, "created_at")
    search_fields = ("=sequence", "action", "actor_label", "target_label", "=target_id", "=correlation_id")
    show_full_result_count = False
    list_per_page = 50
    readonly_fields = (
        "sequence",
        "created_at",
        "actor_type",
        "actor_id",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "target_label",
        "details",
        "details_digest",
        "redacted_at",
        "correlation_id",
        "prev_hash",
        "hash",
    )

    def get_urls(self) -> list[URLPattern]:
        verify = path("verify/", self.admin_site.admin_view(self.verify_view), name="audit_auditevent_verify")
        return [verify, *super().get_urls()]

    def verify_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("audit.verify_auditevent"):
            raise PermissionDenied
        result = audit_chain_verify(actor=Actor.for_user(request.user))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Audit trail verification",
            "result": result,
        }
        return TemplateResponse(request, "admin/audit/verify.html", context)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra = {**(extra_context or {}), "can_verify": request.user.has_perm("audit.verify_auditevent")}
        return super().changelist_view(request, extra_context=extra)


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("id", "sequence", "created_at", "hash")
    readonly_fields = ("sequence", "hash", "created_at", "signature")
    show_full_result_count = False
