"""The audit trail for Auditors: a filtered, cursor-paginated event list and chain verification."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.api.filters import AuditEventFilter
from audit.api.serializers import AuditEventSerializer, VerificationSerializer
from audit.context import Actor
from audit.models import AuditEvent
from audit.services import audit_chain_verify
from config.permissions import has_perms


class AuditEventPagination(CursorPagination):
    ordering = "-sequence"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

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


class AuditVerifyView(APIView):
    permission_classes = [has_perms("audit.verify_auditevent")]

    @extend_schema(responses=VerificationSerializer)
    def get(self, request: Request) -> Response:
        """Recompute the chain and check the signed checkpoints. Recorded in the trail."""
        result = audit_chain_verify(actor=Actor.for_user(request.user, via_token=request.auth is not None))
        return Response(VerificationSerializer(result.as_dict()).data)
