"""List filters for the console pages of large tables that record a label (runs, conversations)."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from governance.models import Label


class LabelFilter(admin.SimpleListFilter):
    """By label, with the choices from the labels table: not a ``SELECT DISTINCT label`` over every row."""

    title = "label"
    parameter_name = "label__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in Label.objects.order_by("name").values_list("name", flat=True)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value():
            return queryset.filter(label=self.value())
        return queryset
