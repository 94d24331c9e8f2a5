"""The API's one error shape: every error leaves as ``{"error": {code, message, fields}}``.

``exception_handler`` maps domain errors and DRF's to it, once. Django's own error pages (a URL nothing answers,
a request Django refuses before any view, a crash) are ``handler404``/``handler400``/``handler500`` in
``config.urls``: under ``/api/`` they answer the same shape, elsewhere Django's pages.
"""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import DomainError

API_PREFIX = "/api/"


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _field_errors(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return {str(name): messages for name, messages in detail.items()}
    return {"non_field_errors": detail if isinstance(detail, list) else [detail]}


def _as_api_exception(exc: Exception) -> Exception:
    """Django's exceptions as DRF's, so that they leave in the one shape too (DRF alone answers ``detail``)."""
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(as_serializer_error(exc))
    if isinstance(exc, Http404):
        return exceptions.NotFound(str(exc) if exc.args else None)
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied(str(exc) if exc.args else None)
    return exc


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
    exc = _as_api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("invalid", "The input is not valid.", _field_errors(response.data))
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        response.data = error_body(str(code), str(exc.detail))
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("not_found", "There is nothing at this address."), status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("bad_request", "The request cannot be read."), status=400)
    return defaults.bad_request(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("server_error", "Something went wrong on our side; it is logged."), status=500)
    return defaults.server_error(request)
