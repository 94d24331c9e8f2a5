"""Webhook endpoints and deliveries: every state change, with its audit event in the same transaction.

A delivery is sent by ``webhooks.tasks`` after the transaction that created it commits. Each attempt claims the
delivery with a guarded update (one request even when the task's message arrives twice), makes the request
outside any transaction, then records the answer, the next attempt's time and the audit event together. The
secret never reaches the audit trail, nor does the endpoint URL's query (it may carry a token of the receiver's).
"""

import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from agents import http_tools
from audit.context import Actor, current_actor, current_correlation_id
from audit.services import Target, audit_record
from config import enqueue
from config.errors import Conflict, DomainError, NotAllowed
from governance.services import audit_actor
from webhooks.models import URL_MAX_LENGTH, DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent

ALLOW_PRIVATE_PERMISSION = "webhooks.allow_private_webhookendpoint"
MANAGE_PERMISSION = "webhooks.manage_webhookendpoint"
REPLAY_PERMISSION = "webhooks.replay_webhookdelivery"

SIGNATURE_HEADER = "Steward-Signature"
EVENT_HEADER = "Steward-Event"
DELIVERY_HEADER = "Steward-Delivery"
# How much of an answer's body is kept with the delivery.
RESPONSE_KEPT = 2000
# A pending delivery whose next attempt is this late was lost (its message, its worker): it may be replayed.
STUCK_AFTER = dt.timedelta(seconds=60)
ACTOR = Actor.system("webhooks")


# --- signing ------------------------------------------------------------------------------------------------------


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent for ``payload`` (and signed)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Steward-Signature`` header: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def destination(url: str) -> str:
    """``url`` without credentials, query or fragment: what the audit trail and the console show."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# --- endpoints ----------------------------------------------------------------------------------------------------


def _url_errors(url: str, *, allow_private: bool) -> list[str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ["Give an http:// or https:// URL."]
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return ["The port is not a number from 0 to 65535."]
    if parts.username or parts.password:
        return ["Put no credentials in the URL: deliveries are signed with the endpoint's secret."]
    if not allow_private:
        try:
            http_tools.resolve(parts.hostname, port, allow_private=False)
        except http_tools.RequestRefused:
            return [f"{parts.hostname} is a private or loopback address: only an Admin may allow deliveries there."]
        except http_tools.RequestFailed:
            pass  # it may resolve later; every attempt checks it again
    return []


def _event_errors(events: Sequence[str]) -> list[str]:
    if not events:
        return ["Name at least one event."]
    unknown = sorted(set(events) - set(WebhookEvent.values))
    if unknown:
        return [f"Unknown event(s): {', '.join(unknown)}. Choose from: {', '.join(WebhookEvent.values)}."]
    return []


@transaction.atomic
def endpoint_create(
    *, actor: User, url: str, events: Sequence[str], allow_private: bool = False, owner: User | None = None
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint for ``owner`` (the actor unless they may manage others' endpoints). Returns it with its
    signing secret, which is shown this once and never again. Only an Admin may let it reach private addresses."""
    owner = owner or actor
    errors: dict[str, list[str]] = {}
    if owner.pk != actor.pk and not actor.has_perm(MANAGE_PERMISSION):
        errors["owner"] = ["Only an Admin may register an endpoint for someone else."]
    if allow_private and not actor.has_perm(ALLOW_PRIVATE_PERMISSION):
        errors["allow_private"] = ["Only an Admin may allow private and loopback addresses."]
        allow_private = False
    if len(url) > URL_MAX_LENGTH:
        errors["url"] = [f"At most {URL_MAX_LENGTH} characters."]
    elif url_errors := _url_errors(url, allow_private=allow_private):
        errors["url"] = url_errors
    if event_errors := _event_errors(events):
        errors["events"] = event_errors
    if errors:
        raise DomainError("The webhook endpoint is not valid.", fields=errors)
    secret = f"whsec_{secrets.token_urlsafe(32)}"
    endpoint = WebhookEndpoint.objects.create(
        owner=owner,
        url=url,
        events=[event for event in WebhookEvent.values if event in events],
        secret=http_tools.encrypt_secret(secret),
        allow_private=allow_private,
        created_by=actor,
    )
    audit_record(
        actor=audit_actor(actor),
        action="webhook.endpoint.created",
        target=endpoint,
        details={
            "owner": owner.get_username(),
            "destination": destination(url),
            "events": endpoint.events,
            "allow_private": allow_private,
        },
    )
    return endpoint, secret


def _require_owner_or(actor: User, endpoint: WebhookEndpoint, permission: str, doing: str) -> None:
    if endpoint.owner_id != actor.pk and not actor.has_perm(permission):
        raise NotAllowed(f"Only the endpoint's owner or an Admin may {doing}.")


@transaction.atomic
def endpoint_set_active(*, actor: User, endpoint: WebhookEndpoint, active: bool) -> WebhookEndpoint:
    """Pause (no new deliveries; pending ones fail at their next attempt) or resume an endpoint."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    _require_owner_or(actor, endpoint, MANAGE_PERMISSION, "change it")
    if endpoint.active != active:
        endpoint.active = active
        endpoint.save(update_fields=["active"])
        audit_record(
            actor=audit_actor(actor),
            action=f"webhook.endpoint.{'activated' if active else 'deactivated'}",
            target=endpoint,
            details={"destination": destination(endpoint.url)},
        )
    return endpoint


@transaction.atomic
def endpoint_delete(*, actor: User, endpoint: WebhookEndpoint) -> None:
    """Remove an endpoint and its deliveries (the audit trail keeps what happened to them)."""
    endpoint = WebhookEndpoint.objects.select_for_update().select_related("owner").get(pk=endpoint.pk)
    _require_owner_or(actor, endpoint, MANAGE_PERMISSION, "remove it")
    target = Target.of(endpoint)
    deliveries = endpoint.deliveries.count()
    endpoint.delete()
    audit_record(
        actor=audit_actor(actor),
        action="webhook.endpoint.deleted",
        target=target,
        details={
            "owner": endpoint.owner.get_username(),
            "destination": destination(endpoint.url),
            "deliveries": deliveries,
        },
    )


# --- deliveries ---------------------------------------------------------------------------------------------------


def _enqueue(delivery_id: uuid.UUID) -> None:
    """Attempt the delivery once the transaction commits; with the broker down, ``deliveries_sweep`` sends it once
    it is overdue."""
    enqueue.enqueue_after_commit(
        "webhooks.tasks.webhook_deliver_task", str(delivery_id), later="the deliveries sweeper"
    )


def delivery_enqueue(
    *, event: str, data: dict[str, Any], endpoints: Iterable[WebhookEndpoint]
) -> list[WebhookDelivery]:
    """Create one delivery of ``event`` for each endpoint, each sent after commit. Call it inside the transaction
    that made the event happen, so that a change rolled back sends nothing. The payload is
    ``{"id": <delivery id>, "event", "created_at", "data"}``; it never changes, whatever the retries and replays."""
    actor = current_actor() or ACTOR
    correlation_id = current_correlation_id()
    now = timezone.now()
    deliveries = []
    with transaction.atomic(savepoint=False):
        for endpoint in endpoints:
            delivery_id = uuid.uuid4()
            delivery = WebhookDelivery.objects.create(
                id=delivery_id,
                endpoint=endpoint,
                event=event,
                payload={"id": str(delivery_id), "event": event, "created_at": now.isoformat(), "data": data},
                next_attempt_at=now,
                correlation_id=correlation_id,
                created_at=now,
            )
            audit_record(
                actor=actor,
                action="webhook.delivery.enqueued",
                target=delivery,
                correlation_id=correlation_id,
                details={"event": event, "endpoint": endpoint.pk, "owner": endpoint.owner.get_username()},
            )
            _enqueue(delivery_id)
            deliveries.append(delivery)
    return deliveries


@dataclass(frozen=True)
class _Outcome:
    status: int | None = None
    body: str = ""
    error: str = ""
    permanent: bool = False  # trying again will not help (a refused destination, an undecryptable secret)

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _send(delivery: WebhookDelivery) -> _Outcome:
    endpoint = delivery.endpoint
    if not endpoint.active:
        return _Outcome(error="the endpoint is inactive", permanent=True)
    try:
        secret = http_tools.decrypt_secret(endpoint.secret)
    except ValueError as error:
        return _Outcome(error=str(error), permanent=True)
    body = body_of(delivery.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "steward-webhooks",
        EVENT_HEADER: delivery.event,
        DELIVERY_HEADER: str(delivery.pk),
        SIGNATURE_HEADER: signature(secret, int(time.time()), body),
    }
    try:
        response = http_tools.request(
            "POST",
            endpoint.url,
            headers,
            body,
            settings.WEBHOOKS_TIMEOUT_SECONDS,
            allow_private=endpoint.allow_private,
            max_response=RESPONSE_KEPT,
        )
    except http_tools.RequestRefused as error:
        return _Outcome(error=str(error), permanent=True)
    except http_tools.RequestFailed as error:
        return _Outcome(error=str(error))
    # Kept as text: undecodable bytes and NULs (which PostgreSQL's text refuses) become U+FFFD.
    text = response.body.decode(errors="replace").replace("\x00", "\ufffd")
    if 200 <= response.status < 300:
        return _Outcome(status=response.status, body=text)
    return _Outcome(
        status=response.status, body=text, error=f"the endpoint answered {response.status} {response.reason}"
    )


def backoff(attempts: int) -> dt.timedelta:
    """How long to wait after the ``attempts``-th failed attempt: the base, doubled for each attempt before it."""
    return dt.timedelta(seconds=settings.WEBHOOKS_BACKOFF_SECONDS * 2 ** (attempts - 1))


@transaction.atomic
def _record(delivery_id: Any, outcome: _Outcome) -> dt.datetime | None:
    delivery = WebhookDelivery.objects.select_for_update().filter(pk=delivery_id).first()
    if delivery is None:
        return None  # its endpoint was deleted meanwhile
    now = timezone.now()
    retry = (
        not outcome.delivered
        and not outcome.permanent
        and delivery.replayed_at is None
        and delivery.attempts < settings.WEBHOOKS_MAX_ATTEMPTS
    )
    if outcome.delivered:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = DeliveryStatus.SUCCEEDED, now, None
    elif retry:
        delivery.next_attempt_at = now + backoff(delivery.attempts)
    else:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
    delivery.claimed_until = None
    delivery.last_response_status = outcome.status
    delivery.last_response_body = outcome.body[:RESPONSE_KEPT]
    delivery.last_error = outcome.error
    delivery.save(
        update_fields=[
            "status",
            "delivered_at",
            "next_attempt_at",
            "claimed_until",
            "last_response_status",
            "last_response_body",
            "last_error",
        ]
    )
    next_attempt_at = delivery.next_attempt_at if retry else None
    audit_record(
        actor=ACTOR,
        action="webhook.delivery.attempted",
        target=delivery,
        correlation_id=delivery.correlation_id,
        details={
            "attempt": delivery.attempts,
            "response_status": outcome.status,
            "error": outcome.error,
            "outcome": "delivered" if outcome.delivered else "retrying" if retry else "failed",
            "next_attempt_at": next_attempt_at.isoformat() if next_attempt_at else None,
        },
    )
    return next_attempt_at


def delivery_attempt(*, delivery_id: Any) -> dt.datetime | None:
    """Make the delivery's next attempt if it is due, and say when to come back: the next attempt's time after a
    failure that is worth retrying (or when the delivery is not due yet, or another attempt holds it), else None.

    2xx delivers; another status or a connection error is retried after ``backoff`` until
    ``WEBHOOKS_MAX_ATTEMPTS``; a refused destination fails at once, and so does a replay (one attempt). Not one
    transaction: the request is made between the claim and the record, holding no lock.
    """
    now = timezone.now()
    lease = now + dt.timedelta(seconds=settings.WEBHOOKS_TIMEOUT_SECONDS + 30)
    claimed = WebhookDelivery.objects.filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
        pk=delivery_id,
        status=DeliveryStatus.PENDING,
        next_attempt_at__lte=now,
    ).update(attempts=F("attempts") + 1, claimed_until=lease)
    if not claimed:
        waiting = WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING).first()
        if waiting is None:
            return None  # delivered, failed, or gone
        return max(filter(None, [waiting.next_attempt_at, waiting.claimed_until]), default=None)
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None:
        return None
    return _record(delivery_id, _send(delivery))


@transaction.atomic
def delivery_replay(*, actor: User, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery once more, now: one attempt, not retried, with a fresh signature and the same payload (and
    id, so that receivers can tell it is the same event). Its endpoint's owner may, and whoever may replay any
    delivery (Admins). A delivery still being retried is refused, unless it is stuck (its attempt long overdue)."""
    delivery = WebhookDelivery.objects.select_for_update().select_related("endpoint").get(pk=delivery.pk)
    _require_owner_or(actor, delivery.endpoint, REPLAY_PERMISSION, "replay its deliveries")
    now = timezone.now()
    if delivery.claimed_until is not None and delivery.claimed_until > now:
        raise Conflict("An attempt is being made right now: replay it once that is over.", code="in_progress")
    if delivery.status == DeliveryStatus.PENDING and (delivery.next_attempt_at or now) > now - STUCK_AFTER:
        when = f" (next at {delivery.next_attempt_at:%H:%M:%S} UTC)" if delivery.next_attempt_at else ""
        raise Conflict(f"This delivery is still being attempted{when}: wait for it to succeed or fail.", code="pending")
    if not delivery.endpoint.active:
        raise Conflict("The endpoint is inactive: activate it first.", code="inactive")
    previous = delivery.status
    delivery.status, delivery.replayed_at, delivery.next_attempt_at = DeliveryStatus.PENDING, now, now
    delivery.save(update_fields=["status", "replayed_at", "next_attempt_at"])
    audit_record(
        actor=audit_actor(actor),
        action="webhook.delivery.replayed",
        target=delivery,
        details={
            "event": delivery.event,
            "endpoint": delivery.endpoint_id,
            "previous_status": previous,
            "attempts": delivery.attempts,
        },
    )
    _enqueue(delivery.pk)
    return delivery


def deliveries_sweep(*, now: dt.datetime | None = None) -> int:
    """Enqueue pending deliveries whose attempt is a minute overdue and not held by an attempt in progress: their
    task was lost (a broker restart, a dead worker). Attempts stay claimed, so a delivery is never sent twice at
    once. Returns how many were enqueued."""
    now = now or timezone.now()
    overdue = WebhookDelivery.objects.filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
        status=DeliveryStatus.PENDING,
        next_attempt_at__lt=now - dt.timedelta(seconds=60),
    ).values_list("pk", flat=True)
    count = 0
    for delivery_id in overdue:
        _enqueue(delivery_id)
        count += 1
    return count
