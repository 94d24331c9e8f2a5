"""The OpenAPI schema describes the errors too: each operation lists the error answers it can give, in the one
shape of ``config.api``, so that a client (or a fuzzer checking status codes) finds every answer documented."""

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable and machine-readable: invalid, parse_error, not_found, conflict ...")
    message = serializers.CharField(help_text="For people.")
    fields = serializers.DictField(  # type: ignore[assignment]  # a field named like Serializer.fields
        help_text="Per field at fault, its messages (an object of them for nested input); empty otherwise."
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
ERRORS = {
    "400": "The request is not valid: malformed JSON, a field or query parameter in error (see `fields`).",
    "401": "No credentials, or credentials that are not valid.",
    "403": "The caller may not do this.",
    "404": "Nothing at this address (an unknown id or slug in the path).",
    "409": "Valid, but the object's current state does not allow it.",
    "415": "The body is not JSON (or a form).",
}


class AutoSchema(openapi.AutoSchema):
    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code in self._error_codes():
            error = OpenApiResponse(ErrorSerializer, description=ERRORS[code])
            responses.setdefault(code, self._get_response_for_code(error, code, direction=direction))
        return responses

    def _error_codes(self) -> list[str]:
        codes = ["400"]
        if not any(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            codes += ["401", "403"]
        if "{" in self.path:
            codes.append("404")
        if self.method in UNSAFE_METHODS:
            codes.append("409")
            if self.get_request_serializer() is not None:
                codes.append("415")
        return codes
