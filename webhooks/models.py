"""Webhook endpoints registered by API clients, and the deliveries made to them.

An endpoint's secret signs every delivery (HMAC-SHA256); it is stored encrypted (``agents.http_tools``, with
``TOOL_SECRETS_KEY``) and shown once, when the endpoint is created. A delivery is one event for one endpoint: its
payload is fixed when the event happens, and every attempt to send it is counted, with the last answer kept.
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

URL_MAX_LENGTH = 1000


class WebhookEvent(models.TextChoices):
    RUN_FINISHED = "run.finished", "a run finished"
    APPROVAL_REQUESTED = "approval.requested", "a tool call waits for approval"
    APPROVAL_DECIDED = "approval.decided", "a tool approval was decided (or expired)"
    CONVERSATION_ESCALATED = "conversation.escalated", "a conversation was handed to a person"
    CONVERSATION_OPERATOR_MESSAGE = "conversation.operator_message", "an operator answered in a conversation"


class WebhookEndpoint(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="webhook_endpoints")
    url = models.CharField(max_length=URL_MAX_LENGTH)
    events = models.JSONField(default=list, help_text="The events it receives (WebhookEvent values).")
    secret = models.TextField(help_text="Encrypted; shown once, when the endpoint is created.")
    allow_private = models.BooleanField(
        default=False, help_text="Deliver to private and loopback addresses too (set by an Admin)."
    )
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "active"], name="webhook_endpoint_owner_idx")]
        permissions = [
            ("allow_private_webhookendpoint", "Can let webhook endpoints call private and loopback addresses"),
            ("manage_webhookendpoint", "Can register, see and remove webhook endpoints of other users"),
        ]

    def __str__(self) -> str:
        return f"webhook {self.pk} of {self.owner.get_username()}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "pending"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"


class WebhookDelivery(models.Model):
    """One event for one endpoint. ``pending`` until an attempt gets a 2xx (``succeeded``) or the attempts run out
    (``failed``); a replay makes it ``pending`` again for one more attempt.

    ``claimed_until`` is set while an attempt is in flight, so that a message delivered twice makes one request.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40, choices=WebhookEvent.choices)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_response_body = models.TextField(blank=True, help_text="The start of the last answer's body.")
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    correlation_id = models.UUIDField(default=uuid.uuid4, help_text="That of the action that caused the event.")
    replayed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint_idx"),
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due_idx"),
        ]
        permissions = [("replay_webhookdelivery", "Can replay any webhook delivery")]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} {str(self.id)[:8]}"
