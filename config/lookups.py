"""Finding an object by an id someone typed: the console and the API answer a 404 for any id that names nothing."""

from typing import Any, TypeVar

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404

M = TypeVar("M", bound=Model)


def object_or_404(queryset: QuerySet[M], message: str = "There is no such object.", **lookup: Any) -> M:
    """``queryset.get(**lookup)``, where an id that cannot be one (``abc``, ``null,null``, a number past the
    column's range) is a missing object too: ``Http404(message)``, never a crash."""
    try:
        return queryset.get(**lookup)
    except (ObjectDoesNotExist, ValueError, TypeError, OverflowError, ValidationError):
        raise Http404(message) from None
