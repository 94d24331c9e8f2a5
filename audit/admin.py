"""The audit trail in the console: read-only, filterable, with a "verify now" page and exports for Auditors.

The trail is the largest table: its list never counts every row (``config.changelists``), and its filters list
their choices by skipping through indexes instead of reading the table.
"""

from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG, ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from audit.context import Actor
from audit.export import ExportFormat
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_chain_verify, audit_export
from config.changelists import BoundedCountPaginator, DeferringChangeList, LargeTableAdmin, distinct_values

EXPORT_PERMISSIONS = ("audit.view_auditevent", "audit.export_auditevent")


class ReadOnlyAdmin(admin.ModelAdmin):
    """The trail is append-only: the console offers no add, change or delete."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ActorTypeFilter(admin.SimpleListFilter):
    title = "actor type"
    parameter_name = "actor_type__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # The types in use, from the actor index: a probe per type, not a read of every event.
        return [(actor_type, actor_type) for actor_type in distinct_values(AuditEvent, "actor_type")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        if self.value():
            return queryset.filter(actor_type=self.value())
        return queryset


class ActionNamespaceFilter(admin.SimpleListFilter):
    title = "action namespace"
    parameter_name = "namespace"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # The actions in use, from the action index: a probe per action, not a read of every event.
        namespaces = sorted({action.split(".", 1)[0] for action in distinct_values(AuditEvent, "action")})
        return [(namespace, namespace) for namespace in namespaces]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        if self.value():
            return queryset.filter(action__startswith=f"{self.value()}.")
        return queryset


class FiltersOnlyChangeList(DeferringChangeList):
    """The changelist's filters and search applied to the queryset, without fetching the page it would show."""

    def get_results(self, request: HttpRequest) -> None:
        pass


@admin.register(AuditEvent)
class AuditEventAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = ("sequence", "created_at", "actor_label", "actor_type", "action", "target_type", "target_label")
    list_filter = (ActorTypeFilter, ActionNamespaceFilter, "created_at")
    search_fields = ("=sequence", "action", "actor_label", "target_label", "=target_id", "=correlation_id")
    list_defer = ("details",)
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
        "seal",
    )

    def get_urls(self) -> list[URLPattern]:
        verify = path("verify/", self.admin_site.admin_view(self.verify_view), name="audit_auditevent_verify")
        export = path("export/", self.admin_site.admin_view(self.export_view), name="audit_auditevent_export")
        return [verify, export, *super().get_urls()]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        if getattr(request, "audit_export", False):
            return FiltersOnlyChangeList
        return super().get_changelist(request, **kwargs)

    def export_view(self, request: HttpRequest) -> HttpResponseBase:
        """The events the list shows with the same filters and search, as CSV or JSON Lines (``?format=``)."""
        if not request.user.has_perms(EXPORT_PERMISSIONS):
            raise PermissionDenied
        params = request.GET.copy()
        try:
            fmt = ExportFormat(params.pop("format", ["csv"])[-1])
        except ValueError:
            return HttpResponseBadRequest("format must be csv or jsonl", content_type="text/plain")
        request.GET = params  # type: ignore[assignment]  # what remains are the changelist's own parameters
        request.audit_export = True  # type: ignore[attr-defined]
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(f"{reverse('admin:audit_auditevent_changelist')}?{ERROR_FLAG}=1")
        result = audit_export(
            actor=Actor.for_user(request.user),
            events=changelist.queryset,
            fmt=fmt,
            filters={key: params.get(key) for key in sorted(params)},
            via="console",
        )
        response = StreamingHttpResponse(result.content, content_type=result.content_type)
        response["Content-Disposition"] = f'attachment; filename="{result.filename}"'
        response["X-Export-Rows"] = str(result.rows)
        return response

    def verify_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("audit.verify_auditevent"):
            raise PermissionDenied
        result = audit_chain_verify(actor=Actor.for_user(request.user))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Audit trail verification",
            "result": result,
            "checks": result.check_list(),
        }
        return TemplateResponse(request, "admin/audit/verify.html", context)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra = {**(extra_context or {}), "can_verify": request.user.has_perm("audit.verify_auditevent")}
        response = super().changelist_view(request, extra_context=extra)
        context = getattr(response, "context_data", None)
        if context and "cl" in context and request.user.has_perms(EXPORT_PERMISSIONS):
            # The export links carry the list's current filters and search.
            base = reverse("admin:audit_auditevent_export")
            context["export_links"] = [
                (label, base + context["cl"].get_query_string({"format": fmt}))
                for fmt, label in ((ExportFormat.CSV, "Export CSV"), (ExportFormat.JSONL, "Export JSON Lines"))
            ]
        return response


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("id", "sequence", "created_at", "hash")
    readonly_fields = ("sequence", "hash", "created_at", "signature")
    show_full_result_count = False
    paginator = BoundedCountPaginator
