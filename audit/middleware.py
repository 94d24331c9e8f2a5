"""Gives each request a correlation id (from ``X-Request-ID`` when it is a UUID) and makes its user
the default actor of audit records written while it is handled."""

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from audit.context import audit_context


class CorrelationIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            correlation_id = uuid.UUID(request.headers.get("X-Request-ID", ""))
        except ValueError:
            correlation_id = uuid.uuid4()
        with audit_context(correlation_id=correlation_id, request=request):
            response = self.get_response(request)
        response["X-Request-ID"] = str(correlation_id)
        return response
