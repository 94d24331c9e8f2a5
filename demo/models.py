"""The demo's small business tables, behind the demo agents' tools (``demo.tools``): stock, the replenishments and
hedges the agents place, the orders the support persona looks up, and the alerts they send."""

from django.db import models
from django.utils import timezone


class DemoStock(models.Model):
    sku = models.CharField(max_length=40, unique=True)
    on_hand = models.IntegerField(default=0)
    reorder_point = models.IntegerField(default=10)

    def __str__(self) -> str:
        return self.sku


class DemoReplenishment(models.Model):
    sku = models.CharField(max_length=40)
    quantity = models.PositiveIntegerField()
    status = models.CharField(max_length=20, default="placed")
    idempotency_key = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"replenishment {self.pk} of {self.quantity} {self.sku}"


class DemoHedge(models.Model):
    instrument = models.CharField(max_length=40)
    notional = models.DecimalField(max_digits=14, decimal_places=2)
    status = models.CharField(max_length=20, default="open")
    idempotency_key = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"hedge {self.pk} on {self.instrument}"


class DemoOrder(models.Model):
    number = models.CharField(max_length=20, unique=True)
    status = models.CharField(max_length=40)
    carrier = models.CharField(max_length=40, blank=True)
    eta = models.DateField(null=True, blank=True)

    def __str__(self) -> str:
        return self.number


class DemoAlert(models.Model):
    channel = models.CharField(max_length=40)
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"alert to {self.channel}"
