"""Console lists over large tables: counts that stay cheap however many rows there are.

Django's changelist counts its rows with ``COUNT(*)`` on every page, twice when ``show_full_result_count`` is on,
which reads the whole table (or the whole filtered set). The admins of the big tables (audit events, runs,
conversations) derive from ``LargeTableAdmin``: no full count, no facets, and ``BoundedCountPaginator``, which
counts:

- unfiltered, on PostgreSQL: the planner's estimate of the table's rows (``pg_class``, scaled to the table's
  current size, as the planner does), shown as "about 1,000,000", when it is above the limit;
- otherwise: at most ``count_limit + 1`` rows (``SELECT COUNT(*) FROM (SELECT ... LIMIT 10001)``), shown exactly
  below the limit and as "10,000+" above it.

Either way there are no pages past the limit (the 200th page of 50 rows at most): ``OFFSET`` reads every row it
skips, so deeper pages would get slower and slower. A filter (by date, say) narrows the list to the rest.

The templates ``admin/pagination.html`` and ``admin/search_form.html`` (``templates/``) show ``count_label``.

``distinct_values`` lists the distinct values of an indexed column by skipping through its index, for list
filters that would otherwise run ``SELECT DISTINCT`` over every row.
"""

import math
from enum import StrEnum
from functools import cached_property
from typing import Any, ClassVar

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections, models, router
from django.db.models import QuerySet
from django.http import HttpRequest


class CountKind(StrEnum):
    EXACT = "exact"
    AT_LEAST = "at least"  # the limit was reached: there are more
    ESTIMATED = "estimated"  # the planner's estimate of an unfiltered table


def _unfiltered(queryset: QuerySet[Any]) -> bool:
    """The whole table: no WHERE, DISTINCT, slice or set operation (joins for select_related don't filter)."""
    query = queryset.query
    return not (query.where or query.distinct or query.is_sliced or query.combinator or query.extra)


def planner_estimate(queryset: QuerySet[Any]) -> int | None:
    """PostgreSQL's estimate of the rows of ``queryset``'s table; ``None`` elsewhere or before any ANALYZE.

    Like the planner, it scales the rows per page of the last ANALYZE by the table's current size in pages, so
    a table that has grown since stays roughly right. One catalog lookup, whatever the table's size.
    """
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT CASE WHEN c.reltuples < 0 THEN NULL
                        WHEN c.relpages > 0
                        THEN c.reltuples / c.relpages * (pg_relation_size(c.oid) / current_setting('block_size')::int)
                        ELSE c.reltuples END
            FROM pg_class c WHERE c.oid = to_regclass(%s)
            """,
            [connection.ops.quote_name(queryset.model._meta.db_table)],
        )
        row = cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0])


class BoundedCountPaginator(Paginator):
    """A paginator whose count never reads more than ``count_limit + 1`` rows (see the module's docstring)."""

    count_limit: ClassVar[int] = 10_000

    count_kind: CountKind = CountKind.EXACT

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return len(queryset)
        limit = self.count_limit
        if _unfiltered(queryset):
            estimate = planner_estimate(queryset)
            if estimate is not None and estimate > limit:
                self.count_kind = CountKind.ESTIMATED
                return estimate
        counted = queryset.order_by().values("pk")[: limit + 1].count()
        if counted > limit:
            self.count_kind = CountKind.AT_LEAST
            return limit
        return counted

    @cached_property
    def num_pages(self) -> int:
        """No page past the limit, whatever the count: ``OFFSET`` reads every row it skips, so the deepest page
        reads ``count_limit`` rows at most. A filter (by date, say) reaches the rest."""
        return min(super().num_pages, max(1, math.ceil(self.count_limit / self.per_page)))

    @property
    def count_label(self) -> str:
        """The count as the console shows it: "37", "10,000+" or "about 1,000,000"."""
        count = self.count
        if self.count_kind == CountKind.AT_LEAST:
            return f"{count:,}+"
        if self.count_kind == CountKind.ESTIMATED:
            return f"about {count:,}"
        return f"{count:,}"


_LOOSE_SCAN = """
    WITH RECURSIVE found(value) AS (
        SELECT MIN({column}) FROM {table}
        UNION ALL
        SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > found.value) FROM found WHERE found.value IS NOT NULL
    )
    SELECT value FROM found WHERE value IS NOT NULL
"""


def distinct_values(model: type[models.Model], field_name: str) -> list[Any]:
    """The distinct non-null values of ``model.field_name``, in order, by a loose index scan.

    Each step asks the index for the smallest value above the previous one, so the cost grows with the number
    of distinct values, not of rows. The column must lead an index (else every step scans the table).
    """
    field = model._meta.get_field(field_name)
    if not isinstance(field, models.Field) or field.column is None:
        raise TypeError(f"{model.__name__}.{field_name} is not a column")
    connection = connections[router.db_for_read(model)]
    quote = connection.ops.quote_name
    sql = _LOOSE_SCAN.format(column=quote(field.column), table=quote(model._meta.db_table))
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


class DeferringChangeList(ChangeList):
    """A changelist whose query leaves out the admin's ``list_defer`` columns (big JSON the list never shows)."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.defer(*getattr(self.model_admin, "list_defer", ()))


class LargeTableAdmin(admin.ModelAdmin):
    """The console page of a large table: bounded counts, no facet counts, 50 rows a page, and the columns named
    in ``list_defer`` left out of the list's query. Its list filters must not read the table either: use
    choices, a small table, or ``distinct_values``, never a plain field (``SELECT DISTINCT`` over every row),
    and no ``date_hierarchy`` (it reads the first and last dates and the distinct years, months or days)."""

    paginator = BoundedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    list_defer: tuple[str, ...] = ()

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return DeferringChangeList
