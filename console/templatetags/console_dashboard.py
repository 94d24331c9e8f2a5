"""``{% console_dashboard %}`` renders the dashboard on the admin index; filters format its figures."""

from decimal import Decimal, InvalidOperation
from typing import Any

from django import template

from console.dashboard import dashboard_context

register = template.Library()

NO_FIGURE = "—"


@register.inclusion_tag("admin/console/dashboard.html", takes_context=True)
def console_dashboard(context: template.Context) -> dict[str, Any]:
    return dashboard_context(context["request"])


@register.filter
def percent(value: float | None) -> str:
    """A rate from 0 to 1 as a percentage: ``0.6667`` → ``66.7 %``."""
    return NO_FIGURE if value is None else f"{value * 100:.1f} %"


@register.filter
def duration(seconds: float | None) -> str:
    """Seconds as a short duration: ``42 s``, ``3.5 min``, ``2.1 h``, ``1.5 d``."""
    if seconds is None:
        return NO_FIGURE
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


@register.filter
def figure(value: Any, places: int = 2) -> str:
    """A number with ``places`` decimals, or a dash when there is none."""
    if value is None:
        return NO_FIGURE
    try:
        return f"{Decimal(str(value)):,.{places}f}"
    except InvalidOperation:
        return NO_FIGURE
