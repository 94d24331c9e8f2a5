"""The demo's agents, from the reference text: an order agent behind the support persona, an inventory agent whose
large replenishments wait for a person, and a risk monitor whose hedges need two approvers. ``load`` releases them
with the demo's tools (``demo.tools``) and seeds the tables those tools read."""

import datetime as dt
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from agents import tools
from agents.services import tools_sync
from agents.tool_versions import TOOL_KIND
from audit.context import Actor
from demo import tools as demo_tools
from demo.models import DemoOrder, DemoStock
from governance import services
from governance.demo import latest_released, released
from governance.models import GovernedObject

AGENT_KIND = "agent"

ORDER_AGENT: dict[str, Any] = {
    "description": "Looks orders up for the support persona. Read-only.",
    "instructions": "You answer where an order is. Look it up; never guess.",
    "model": {"provider": "scripted", "name": "orders-script"},
    "autonomy": "observe",
    "budgets": {"steps": 4, "tokens": 5000, "wall_seconds": 60},
    "grants": [{"tool": "orders.lookup", "rate_limit": {"calls": 600, "per_seconds": 3600}}],
    "script": [
        {"call": "orders.lookup", "arguments": {"order_id": "input.order_id"}},
        {"when": "has(last.error)", "answer": "I couldn't find that order: please check the number."},
        {
            "when": "last.status == 'delivered'",
            "answer": "Order {{ last.order_id }} was delivered by {{ last.carrier }}.",
        },
        {"answer": "Order {{ last.order_id }} is {{ last.status }} with {{ last.carrier }}, expected {{ last.eta }}."},
    ],
}

INVENTORY_AGENT: dict[str, Any] = {
    "description": "Checks stock and replenishes it; large orders wait for a person.",
    "instructions": "You keep the warehouse stocked. Check stock first; replenish only below the reorder point.",
    "model": {"provider": "scripted", "name": "inventory-script"},
    "autonomy": "supervised",
    "budgets": {"steps": 10, "tokens": 20000, "wall_seconds": 600},
    "grants": [
        {"tool": "inventory.check_stock"},
        {
            "tool": "inventory.place_replenishment",
            "approval": {"when": "args.quantity > 100"},
            "constraints": ["args.quantity <= 10000"],
            "rate_limit": {"calls": 20, "per_seconds": 3600},
        },
        {"tool": "notify.send_alert"},
    ],
    "script": [
        {"call": "inventory.check_stock", "arguments": {"sku": "input.sku"}},
        {"when": "has(last.error)", "answer": "I could not check {{ input.sku }}: {{ last.error }}"},
        {
            "when": "last.on_hand >= last.reorder_point",
            "answer": "{{ input.sku }} has {{ last.on_hand }} on hand, enough: no order placed.",
        },
        {"call": "inventory.place_replenishment", "arguments": {"sku": "input.sku", "quantity": "input.quantity"}},
        {"when": "has(last.error)", "answer": "The replenishment of {{ input.sku }} was not placed: {{ last.error }}"},
        {"answer": "Ordered {{ last.quantity }} units of {{ last.sku }} (order {{ last.order_id }})."},
    ],
}

RISK_MONITOR: dict[str, Any] = {
    "description": "Watches market signals and proposes hedges; every hedge needs two approvers.",
    "instructions": "You monitor FX risk. When volatility is above 0.3, propose a hedge of half the exposure.",
    "model": {"provider": "scripted", "name": "risk-script"},
    "autonomy": "supervised",
    "budgets": {"steps": 10, "tokens": 20000, "wall_seconds": 3600},
    "grants": [
        {"tool": "risk.read_signals"},
        {"tool": "treasury.execute_hedge", "approval": "always", "constraints": ["args.notional <= 5000000.0"]},
    ],
    "script": [
        {"call": "risk.read_signals", "arguments": {"portfolio": "input.portfolio"}},
        {"when": "has(last.error)", "answer": "I could not read the signals: {{ last.error }}"},
        {"when": "last.volatility <= 0.3", "answer": "Volatility {{ last.volatility }} is within limits: no hedge."},
        {
            "call": "treasury.execute_hedge",
            "arguments": {"instrument": "input.portfolio", "notional": "results[0].exposure / 2.0"},
        },
        {"when": "has(last.error)", "answer": "The hedge was not executed: {{ last.error }}"},
        {"answer": "Hedged {{ last.notional }} on {{ last.instrument }} (hedge {{ last.hedge_id }})."},
    ],
}


def tools_release(approvers: list[User]) -> None:
    """The demo's tools (``demo.tools``) synced, and their definitions as synced from code approved and released
    under ``staging`` and ``production`` (what is released there already stays), so that the demo agents can pin
    them. After a migrate the sync has nothing left to do."""
    tools_sync(actor=Actor.system("tools_sync"))
    names = [name for name, spec in tools.registered().items() if spec.function.__module__ == demo_tools.__name__]
    objects = GovernedObject.objects.filter(kind=TOOL_KIND, slug__in=names).order_by("slug")
    latest_released(approvers, list(objects), note="Demo: the demo tools as synced from code")


def _pinned_released(editor: User, approvers: list[User], slug: str, name: str, spec: dict[str, Any]) -> None:
    """Release the demo agent ``slug``; one released before its tools were versioned (it pins none) is submitted
    again, to pin them, and released."""
    released(editor, approvers, AGENT_KIND, slug, name, spec)
    obj = GovernedObject.objects.get(kind=AGENT_KIND, slug=slug)
    current = obj.pointers.filter(label__name="production").select_related("version").first()
    if current is not None and not current.version.pins and spec.get("grants"):
        services.version_submit(actor=editor, obj=obj, note="Demo: pin the tool versions")
        latest_released(approvers, [obj], note=f"Demo: {name} with its tool versions pinned")


def load(*, editor: User, approvers: list[User]) -> None:
    """The demo stock, the demo tools' definitions released, and the demo agents drafted, approved and released
    (unless they are already)."""
    for sku, on_hand, reorder_point in (("SKU-123", 4, 20), ("SKU-456", 250, 50)):
        DemoStock.objects.get_or_create(sku=sku, defaults={"on_hand": on_hand, "reorder_point": reorder_point})
    today = timezone.localdate()
    orders = (
        ("SO-12345", "in transit", "Parcelway", 2),
        ("SO-24680", "delivered", "Parcelway", -1),
        ("SO-13579", "being packed", "FastPost", 4),
    )
    for number, status, carrier, days in orders:
        DemoOrder.objects.get_or_create(
            number=number, defaults={"status": status, "carrier": carrier, "eta": today + dt.timedelta(days=days)}
        )
    tools_release(approvers)
    _pinned_released(editor, approvers, "order-agent", "Order agent", ORDER_AGENT)
    _pinned_released(editor, approvers, "inventory-agent", "Inventory agent", INVENTORY_AGENT)
    _pinned_released(editor, approvers, "risk-monitor", "Risk monitor", RISK_MONITOR)
