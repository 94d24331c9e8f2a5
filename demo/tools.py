"""The demo's tools, from the reference text: orders looked up for the support persona, stock checked and
replenished by the inventory agent, alerts sent, market signals read and hedges opened by the risk monitor. They
work on the demo's small tables (``demo.models``), and are registered while ``STEWARD_DEMO`` is on: it puts this
module in ``AGENTS_TOOL_MODULES``'s default."""

from decimal import Decimal
from typing import Any

from agents.tools import Compensation, tool
from demo.models import DemoAlert, DemoHedge, DemoOrder, DemoReplenishment, DemoStock


@tool("orders.lookup", "Where an order is: its status, carrier and expected delivery date.")
def lookup_order(order_id: str) -> dict[str, Any]:
    order = DemoOrder.objects.filter(number=order_id.upper()).first()
    if order is None:
        raise LookupError(f"there is no order {order_id.upper()}")
    eta = order.eta.strftime("%A %d %B") if order.eta else ""
    return {"order_id": order.number, "status": order.status, "carrier": order.carrier, "eta": eta}


@tool("inventory.check_stock", "How many units of a SKU are on hand, and its reorder point.")
def check_stock(sku: str) -> dict[str, Any]:
    stock = DemoStock.objects.filter(sku=sku.upper()).first()
    if stock is None:
        raise LookupError(f"unknown SKU {sku!r}")
    return {"sku": stock.sku, "on_hand": stock.on_hand, "reorder_point": stock.reorder_point}


@tool(
    "inventory.place_replenishment",
    "Order more units of a SKU from the supplier.",
    side_effect="write",
    risk="medium",
    compensation=Compensation("inventory.cancel_replenishment", {"order_id": "result.order_id"}),
)
def place_replenishment(sku: str, quantity: int, idempotency_key: str = "") -> dict[str, Any]:
    if quantity < 1:
        raise ValueError("the quantity must be at least 1")
    order, _ = DemoReplenishment.objects.get_or_create(
        idempotency_key=idempotency_key or f"manual:{sku}:{quantity}",
        defaults={"sku": sku.upper(), "quantity": quantity},
    )
    return {"order_id": order.pk, "sku": order.sku, "quantity": order.quantity, "status": order.status}


@tool("inventory.cancel_replenishment", "Cancel a replenishment order.", side_effect="write", risk="medium")
def cancel_replenishment(order_id: int) -> dict[str, Any]:
    updated = DemoReplenishment.objects.filter(pk=order_id).update(status="cancelled")
    if not updated:
        raise LookupError(f"there is no replenishment order {order_id}")
    return {"order_id": order_id, "status": "cancelled"}


@tool("notify.send_alert", "Send a short alert to a team channel.", side_effect="write", idempotent=False)
def send_alert(channel: str, message: str) -> dict[str, Any]:
    alert = DemoAlert.objects.create(channel=channel, message=message[:2000])
    return {"alert_id": alert.pk}


@tool("risk.read_signals", "Market signals for a portfolio: volatility (0-1) and net exposure.")
def read_signals(portfolio: str) -> dict[str, Any]:
    signals = {
        "fx-eur": {"volatility": 0.42, "exposure": 2_500_000},
        "fx-gbp": {"volatility": 0.12, "exposure": 400_000},
    }
    if portfolio not in signals:
        raise LookupError(f"unknown portfolio {portfolio!r}; known: {', '.join(signals)}")
    return {"portfolio": portfolio, **signals[portfolio]}


@tool(
    "treasury.execute_hedge",
    "Open a hedge on an instrument for a notional amount.",
    side_effect="write",
    risk="critical",
    compensation=Compensation("treasury.unwind_hedge", {"hedge_id": "result.hedge_id"}),
)
def execute_hedge(instrument: str, notional: float, idempotency_key: str = "") -> dict[str, Any]:
    hedge, _ = DemoHedge.objects.get_or_create(
        idempotency_key=idempotency_key or f"manual:{instrument}:{notional}",
        defaults={"instrument": instrument, "notional": Decimal(str(notional))},
    )
    return {
        "hedge_id": hedge.pk,
        "instrument": hedge.instrument,
        "notional": float(hedge.notional),
        "status": hedge.status,
    }


@tool("treasury.unwind_hedge", "Close a hedge.", side_effect="write", risk="critical")
def unwind_hedge(hedge_id: int) -> dict[str, Any]:
    if not DemoHedge.objects.filter(pk=hedge_id).update(status="unwound"):
        raise LookupError(f"there is no hedge {hedge_id}")
    return {"hedge_id": hedge_id, "status": "unwound"}
