"""Webhooks in the console: endpoints (their secrets never shown) and deliveries with their last answers.

Endpoints are registered through the API, where the secret is shown once. Admins pause, resume and remove them
here, and replay deliveries; every action goes through ``webhooks.services``, like the API.
"""

import json
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from config.changelists import LargeTableAdmin
from config.errors import DomainError
from governance.admin import ReadOnly, console_user
from webhooks import services
from webhooks.models import WebhookDelivery, WebhookEndpoint


def _each(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any], act: Callable[[Any], Any], done: str
) -> None:
    """Apply ``act`` to each selected row through its service; report what was done and what was refused."""
    count, refused = 0, []
    for obj in queryset:
        try:
            act(obj)
            count += 1
        except DomainError as error:
            refused.append(f"{obj}: {error.message}")
    if count:
        modeladmin.message_user(request, f"{done}: {count}.", messages.SUCCESS)
    for message in refused:
        modeladmin.message_user(request, message, messages.ERROR)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnly):
    list_display = ("id", "owner", "where", "event_names", "allow_private", "active", "created_at")
    list_filter = ("active", "allow_private")
    list_select_related = ("owner",)
    search_fields = ("owner__username", "url")
    fields = ("owner", "where", "event_names", "allow_private", "active", "created_by", "created_at", "deliveries_link")
    readonly_fields = fields
    actions = ("deactivate", "activate", "remove")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_manage_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(services.MANAGE_PERMISSION)

    @admin.display(description="destination")
    def where(self, endpoint: WebhookEndpoint) -> str:
        return services.destination(endpoint.url)

    @admin.display(description="events")
    def event_names(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.events)

    @admin.display(description="deliveries")
    def deliveries_link(self, endpoint: WebhookEndpoint) -> str:
        url = reverse("admin:webhooks_webhookdelivery_changelist") + f"?endpoint__id__exact={endpoint.pk}"
        return format_html('<a href="{}">the deliveries of this endpoint</a>', url)

    @admin.action(description="Pause the selected endpoints", permissions=["manage"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        _each(
            self,
            request,
            queryset,
            lambda e: services.endpoint_set_active(actor=console_user(request), endpoint=e, active=False),
            "Paused",
        )

    @admin.action(description="Resume the selected endpoints", permissions=["manage"])
    def activate(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        _each(
            self,
            request,
            queryset,
            lambda e: services.endpoint_set_active(actor=console_user(request), endpoint=e, active=True),
            "Resumed",
        )

    @admin.action(description="Remove the selected endpoints and their deliveries", permissions=["manage"])
    def remove(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        _each(
            self,
            request,
            queryset,
            lambda e: services.endpoint_delete(actor=console_user(request), endpoint=e),
            "Removed",
        )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(LargeTableAdmin, ReadOnly):
    list_display = (
        "short_id",
        "event",
        "endpoint",
        "owner",
        "status",
        "attempts",
        "last_response_status",
        "created_at",
        "delivered_at",
    )
    list_filter = ("status", "event", "created_at")
    list_select_related = ("endpoint", "endpoint__owner")
    search_fields = ("=id", "endpoint__owner__username")
    list_defer = ("payload", "last_response_body")
    fields = (
        "id",
        "endpoint",
        "event",
        "status",
        "attempts",
        "next_attempt_at",
        "last_response_status",
        "last_response_body",
        "last_error",
        "replayed_at",
        "correlation_id",
        "created_at",
        "delivered_at",
        "payload_pretty",
    )
    readonly_fields = fields
    actions = ("replay",)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(services.REPLAY_PERMISSION)

    @admin.display(description="delivery", ordering="id")
    def short_id(self, delivery: WebhookDelivery) -> str:
        return str(delivery.pk)[:8]

    @admin.display(description="owner", ordering="endpoint__owner__username")
    def owner(self, delivery: WebhookDelivery) -> str:
        return delivery.endpoint.owner.get_username()

    @admin.display(description="payload")
    def payload_pretty(self, delivery: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(delivery.payload, indent=2, ensure_ascii=False))

    @admin.action(description="Replay the selected deliveries (one attempt each, now)", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        _each(
            self,
            request,
            queryset,
            lambda d: services.delivery_replay(actor=console_user(request), delivery=d),
            "Replayed",
        )
