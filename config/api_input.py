"""What the API accepts: JSON bodies within bounds, JSON types as declared, query parameters that mean something.

Anything else is a 400 in the one error shape (``config.api``), never a 500 and never a silent guess:

- a JSON body nested deeper than ``MAX_JSON_DEPTH``, or holding a lone UTF-16 surrogate (``"\\ud800"``, which
  no UTF-8 column, log line or worker can carry), is refused when it is parsed;
- a number where a string is declared (or a string where a number or a boolean is) is a field error, not
  coerced (``json_type_errors``);
- ``limit`` and ``offset`` outside their range, and a boolean filter that is neither true nor false, are field
  errors of the query;
- an ``Idempotency-Key`` header that is blank, longer than ``MAX_IDEMPOTENCY_KEY`` or not printable ASCII is a
  field error named after the header.
"""

import re
from collections.abc import Mapping
from typing import IO, Any, cast

from django import forms
from django_filters import rest_framework as filters
from rest_framework import pagination, parsers, serializers
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.fields import Field
from rest_framework.request import Request

MAX_JSON_DEPTH = 64
MAX_LIMIT = 1000
MAX_OFFSET = 2**31 - 1
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 200
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing bodies nested too deep and text that is not text."""

    def parse(self, stream: IO[Any], media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(_too_deep()) from None
        _refuse_odd_json(data)
        return data


def _too_deep() -> str:
    return f"JSON parse error - the body is nested deeper than {MAX_JSON_DEPTH} levels."


def _refuse_odd_json(data: Any) -> None:
    """Walk the parsed body without recursion: too deep is a parse error, a lone surrogate a field error."""
    pending = [(data, "", 0)]
    while pending:
        value, path, depth = pending.pop()
        if isinstance(value, str):
            _refuse_lone_surrogate(value, path)
            continue
        if isinstance(value, dict | list) and depth >= MAX_JSON_DEPTH:
            raise ParseError(_too_deep())
        if isinstance(value, dict):
            for key, item in value.items():
                item_path = f"{path}.{_printable(key)}" if path else _printable(key)
                _refuse_lone_surrogate(key, item_path)
                pending.append((item, item_path, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value))


def _printable(key: str) -> str:
    """A key as a field name the answer can carry: a lone surrogate in it written as its escape."""
    return key.encode("utf-8", "backslashreplace").decode()


def _refuse_lone_surrogate(text: str, path: str) -> None:
    if _LONE_SURROGATE.search(text):
        raise ValidationError({path or "non_field_errors": ["A lone UTF-16 surrogate (\\ud800-\\udfff) is not text."]})


def _json_type(field: Field) -> tuple[tuple[type, ...], str] | None:
    """The JSON types a field takes, and their name; None where DRF's own checks suffice."""
    if isinstance(field, serializers.BooleanField):
        return (bool,), "a boolean"
    if isinstance(field, serializers.IntegerField):
        return (int,), "an integer"
    if isinstance(field, serializers.FloatField):
        return (int, float), "a number"
    if isinstance(field, serializers.ChoiceField):
        return ((str,), "a string") if all(isinstance(key, str) for key in field.choices) else None
    if isinstance(field, serializers.CharField | serializers.DateTimeField | serializers.DateField):
        return (str,), "a string"
    return None


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), "something else")


def _value_errors(field: Field, value: Any) -> Any:
    if value is None:
        return None  # whether null is allowed is the field's own question
    if isinstance(field, serializers.ListSerializer):
        if not isinstance(value, list):
            return None  # DRF says it is not a list
        child = cast(serializers.Serializer, field.child)
        items = [json_type_errors(child, item) if isinstance(item, dict) else {} for item in value]
        return items if any(items) else None
    if isinstance(field, serializers.Serializer):
        return (json_type_errors(field, value) or None) if isinstance(value, dict) else None
    if isinstance(field, serializers.ListField):
        if not isinstance(value, list) or field.child is None:
            return None
        found = {str(index): _value_errors(field.child, item) for index, item in enumerate(value)}
        return {index: errors for index, errors in found.items() if errors} or None
    expected = _json_type(field)
    if expected is None:
        return None
    types, name = expected
    if isinstance(value, types) and not (isinstance(value, bool) and bool not in types):
        return None
    return [f"Must be {name}, not {_kind(value)}."]


def json_type_errors(serializer: serializers.Serializer, data: Mapping[str, Any]) -> dict[str, Any]:
    """Field errors for values of the wrong JSON type (``{"text": 42}``), nested serializers included."""
    errors = {}
    for name, field in serializer.fields.items():
        if field.read_only or name not in data:
            continue
        problem = _value_errors(field, data[name])
        if problem:
            errors[name] = problem
    return errors


def query_int(request: Request, name: str, *, default: int | None, minimum: int, maximum: int) -> int | None:
    """An integer query parameter within bounds; else a 400 naming it."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(serializers.IntegerField(min_value=minimum, max_value=maximum).run_validation(raw))
    except ValidationError as error:
        raise ValidationError({name: error.detail}) from None


def idempotency_key(request: Request) -> str:
    """The request's ``Idempotency-Key`` header ("" without one); a 400 naming the header when it cannot be one."""
    raw = request.headers.get(IDEMPOTENCY_KEY_HEADER)
    if raw is None:
        return ""
    key = raw.strip()
    if not key:
        problem = "May not be blank."
    elif len(key) > MAX_IDEMPOTENCY_KEY:
        problem = f"At most {MAX_IDEMPOTENCY_KEY} characters."
    elif not (key.isascii() and key.isprintable()):
        problem = "Printable ASCII characters only."
    else:
        return key
    raise ValidationError({IDEMPOTENCY_KEY_HEADER: [problem]})


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """DRF's limit/offset pagination, where a limit or offset out of range is a 400 naming it (DRF ignores it)."""

    max_limit = MAX_LIMIT

    def get_limit(self, request: Request) -> int | None:
        return query_int(request, self.limit_query_param, default=self.default_limit, minimum=1, maximum=MAX_LIMIT)

    def get_offset(self, request: Request) -> int:
        return query_int(request, self.offset_query_param, default=0, minimum=0, maximum=MAX_OFFSET) or 0

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        bounds = {self.limit_query_param: (1, MAX_LIMIT), self.offset_query_param: (0, MAX_OFFSET)}
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            minimum, maximum = bounds[parameter["name"]]
            parameter["schema"].update(minimum=minimum, maximum=maximum)
        return parameters


class StrictBooleanField(forms.Field):
    """``true`` or ``false`` (``1``/``0``); anything else is an error, not "no filter" as Django's select has it."""

    widget = forms.TextInput
    VALUES = {"true": True, "1": True, "false": False, "0": False}

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        if str(value).lower() not in self.VALUES:
            raise forms.ValidationError("Use true or false.", code="invalid")
        return self.VALUES[str(value).lower()]


class StrictBooleanFilter(filters.BooleanFilter):
    field_class = StrictBooleanField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.TextInput)  # DRF's boolean widget reads any other word as "no filter"
        super().__init__(*args, **kwargs)
