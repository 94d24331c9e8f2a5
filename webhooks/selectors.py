"""Reads: which endpoints an event goes to, and which endpoints a user may see."""

from collections.abc import Iterable

from django.contrib.auth.models import Permission, User
from django.db.models import Q, QuerySet

from webhooks.models import WebhookEndpoint

DECIDE_PERMISSION = ("governance", "decide_reviewitem")


def endpoints_visible_to(user: User) -> QuerySet[WebhookEndpoint]:
    """A user's own endpoints; everyone's for whoever may manage others' endpoints (Admins)."""
    endpoints = WebhookEndpoint.objects.select_related("owner")
    return endpoints if user.has_perm("webhooks.manage_webhookendpoint") else endpoints.filter(owner=user)


def endpoints_for(event: str, *, owners: Iterable[int] = (), deciders: bool = False) -> list[WebhookEndpoint]:
    """The active endpoints of active users that receive ``event``: those of ``owners`` (user ids) and, with
    ``deciders``, those of everyone who may decide review items (Approvers, Admins). One query."""
    candidates = WebhookEndpoint.objects.filter(active=True, owner__is_active=True)
    if deciders:
        app_label, codename = DECIDE_PERMISSION
        decide = Permission.objects.filter(content_type__app_label=app_label, codename=codename)
        who = (
            Q(owner_id__in=list(owners))
            | Q(owner__is_superuser=True)
            | Q(owner__user_permissions__in=decide)
            | Q(owner__groups__permissions__in=decide)
        )
        # The permissions' joins repeat an endpoint: matched in a subquery, each endpoint listed once.
        candidates = candidates.filter(pk__in=WebhookEndpoint.objects.filter(who).values("pk"))
    else:
        owners = list(owners)
        # Most owners have no endpoint (a run's requester, a conversation's client): a cheap probe first.
        if not WebhookEndpoint.objects.filter(owner_id__in=owners, active=True).exists():
            return []
        candidates = candidates.filter(owner_id__in=owners)
    # Few endpoints per event; the events list is filtered here because SQLite has no JSON containment lookup.
    return [endpoint for endpoint in candidates.select_related("owner").order_by("pk") if event in endpoint.events]
