"""The audit trail for Auditors: a filtered, cursor-paginated event list, exports, and chain verification."""

from collections.abc import Iterable

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.api.filters import AuditEventFilter
from audit.api.serializers import AuditEventSerializer, VerificationSerializer
from audit.context import Actor
from audit.export import CONTENT_TYPES, ExportFormat
from audit.models import AuditEvent
from audit.services import audit_chain_verify, audit_export
from config.api_input import query_int
from config.permissions import has_perms


class AuditEventPagination(CursorPagination):
    ordering = "-sequence"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request: Request) -> int:
        # A page size out of range is a 400 naming it, as limit and offset are elsewhere (DRF would ignore it).
        size = query_int(
            request, self.page_size_query_param, default=self.page_size, minimum=1, maximum=self.max_page_size
        )
        return size or self.page_size

    def decode_cursor(self, request: Request) -> Cursor | None:
        # A cursor the client mangled is bad input (400 naming the parameter), not a missing page.
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError(
                {self.cursor_query_param: ["This cursor is not valid: use the next/previous links."]}
            ) from None


class AuditEventListView(generics.ListAPIView):
    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    permission_classes = [has_perms("audit.view_auditevent")]
    filterset_class = AuditEventFilter
    pagination_class = AuditEventPagination


class FormatIsAParameter(DefaultContentNegotiation):
    """``?format=`` names the export's format here, not a renderer: answers that are not the file (errors) are JSON."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, str(renderer.media_type)


class AuditExportView(generics.GenericAPIView):
    """The events matching the list's filters, as one CSV or JSON Lines file, streamed in sequence order.

    The file holds the events up to the chain's head when the export starts. The export is recorded in the
    trail (``audit.trail.exported``: who, the format, the filters, how many rows).
    """

    queryset = AuditEvent.objects.all()
    permission_classes = [has_perms("audit.view_auditevent", "audit.export_auditevent")]
    filterset_class = AuditEventFilter
    content_negotiation_class = FormatIsAParameter
    pagination_class = None

    @extend_schema(
        filters=True,  # the list's filters, as query parameters
        parameters=[
            OpenApiParameter("format", str, enum=[f.value for f in ExportFormat], description="csv (default) or jsonl")
        ],
        responses={
            (200, CONTENT_TYPES[ExportFormat.CSV].split(";")[0]): OpenApiResponse(OpenApiTypes.STR),
            (200, CONTENT_TYPES[ExportFormat.JSONL].split(";")[0]): OpenApiResponse(OpenApiTypes.STR),
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        try:
            fmt = ExportFormat(request.query_params.get("format", ExportFormat.CSV))
        except ValueError:
            raise ValidationError({"format": ["Use csv or jsonl."]}) from None
        events = self.filter_queryset(self.get_queryset())
        filters = {key: request.query_params.get(key) for key in sorted(request.query_params) if key != "format"}
        result = audit_export(
            actor=Actor.for_user(request.user, via_token=request.auth is not None),
            events=events,
            fmt=fmt,
            filters=filters,
            via="api",
        )
        response = StreamingHttpResponse(result.content, content_type=result.content_type)
        response["Content-Disposition"] = f'attachment; filename="{result.filename}"'
        response["X-Export-Rows"] = str(result.rows)
        return response


class AuditVerifyView(APIView):
    permission_classes = [has_perms("audit.verify_auditevent")]

    @extend_schema(responses=VerificationSerializer)
    def get(self, request: Request) -> Response:
        """Recompute the chain and check the signed checkpoints. Recorded in the trail."""
        result = audit_chain_verify(actor=Actor.for_user(request.user, via_token=request.auth is not None))
        return Response(VerificationSerializer(result.as_dict()).data)
