"""The review queue: opening items, deciding them (bound to what was shown, never by whoever asked or wrote it),
resolving, withdrawing and expiring them."""

import datetime as dt
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from audit.context import Actor, audit_context, current_actor
from audit.services import audit_record
from config.errors import Conflict, DomainError, NotAllowed
from governance import selectors
from governance.models import (
    Decision,
    ReviewDecision,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
    Version,
    VersionStatus,
)
from governance.services.common import audit_actor, require_permission, spec_checksum, user_roles
from governance.signals import review_item_decided, review_item_expired, review_item_opened


def review_item_open(
    *,
    kind: str,
    subject: Any,
    subject_label: str,
    reason: str,
    raised_by: str,
    risk: str,
    requested_by: User | None,
    payload: dict[str, Any],
    due_in: dt.timedelta,
    version: Version | None = None,
    approvals_required: int = 1,
    requested_by_label: str = "",
) -> ReviewItem:
    """Put something a person must decide in the review queue. Call it inside the caller's transaction, which
    records its own audit event for what raised the item."""
    item = ReviewItem(
        kind=kind,
        subject_type=subject._meta.label_lower,
        subject_id=str(subject.pk),
        subject_label=subject_label[:200],
        version=version,
        reason=reason,
        raised_by=raised_by[:200],
        risk=risk,
        requested_by=requested_by,
        requested_by_label=requested_by.get_username() if requested_by else requested_by_label,
        approvals_required=approvals_required,
        payload=payload,
        due_at=timezone.now() + due_in,
    )
    item.digest = selectors.review_digest(item)
    item.save()
    review_item_opened.send(sender=ReviewItem, item=item)
    return item


def review_item_resolve(*, actor: User, item: ReviewItem, comment: str = "") -> ReviewItem:
    """Close a pending item that a person handled rather than approved or rejected (a conversation hand-over
    answered and handed back or closed). The caller checks the permission, holds the transaction and records
    the audit event of what it did; this records who handled the item, with their role at the time."""
    item = ReviewItem.objects.select_for_update().get(pk=item.pk)
    if item.status != ReviewStatus.PENDING:
        return item
    ReviewDecision.objects.create(
        item=item,
        decider=actor,
        decider_label=actor.get_username(),
        decider_roles=user_roles(actor),
        decision=Decision.RESOLVE,
        comment=comment,
        digest=item.digest,
    )
    item.status, item.decided_at = ReviewStatus.RESOLVED, timezone.now()
    item.save(update_fields=["status", "decided_at"])
    return item


def review_item_withdraw(*, item: ReviewItem) -> ReviewItem:
    """Take a pending item out of the queue because what raised it went away (the user closed the conversation)."""
    item = ReviewItem.objects.select_for_update().get(pk=item.pk)
    if item.status == ReviewStatus.PENDING:
        item.status, item.decided_at = ReviewStatus.WITHDRAWN, timezone.now()
        item.save(update_fields=["status", "decided_at"])
    return item


@transaction.atomic
def review_decide(*, actor: User, item: ReviewItem, decision: str, digest: str, comment: str = "") -> ReviewItem:
    """Approve or reject a review item, bound to the digest of what the decider saw.

    Refused: deciding one's own request (separation of duties), deciding twice, a stale digest, an item
    no longer pending, and approving a version whose checks failed. An item needing two approvers is
    approved by the second distinct approval; any rejection rejects it.
    """
    require_permission(actor, "governance.decide_reviewitem", "decide reviews")
    item = ReviewItem.objects.select_for_update().get(pk=item.pk)
    if decision not in (Decision.APPROVE, Decision.REJECT):
        raise DomainError("Unknown decision.", fields={"decision": ["Choose approve or reject."]})
    if item.status != ReviewStatus.PENDING:
        raise Conflict(f"This review is {item.status} already; nothing more can be decided.")
    if item.kind == ReviewKind.HANDOVER:
        raise Conflict(
            "A hand-over is not approved or rejected: answer the conversation, then hand it back or close it.",
            code="handover",
        )
    if selectors.own_work(actor, item):
        raise NotAllowed(
            "You cannot review your own request or a version you wrote part of: someone else has to decide it.",
            code="self_review",
        )
    if item.due_at < timezone.now():
        raise Conflict(f"This review expired at {item.due_at:%Y-%m-%d %H:%M} UTC: expiry denies.", code="expired")
    if digest != selectors.review_digest(item):
        raise Conflict(
            "What you reviewed is not what is pending: reload it and decide again.",
            code="stale_digest",
            fields={"digest": ["Does not match the item's current digest."]},
        )
    if item.decisions.filter(decider=actor).exists():
        raise Conflict("You have decided this review already; a second approver must be someone else.")
    version = item.version
    if decision == Decision.APPROVE and version is not None and not version.checks_passed:
        failing = [c["name"] for c in version.checks if not c.get("passed")]
        raise Conflict(
            f"Approval is blocked by failing checks: {', '.join(failing)}.",
            code="checks_failed",
            fields={
                "checks": [f["message"] for c in version.checks for f in c["findings"] if f["severity"] == "error"]
            },
        )
    ReviewDecision.objects.create(
        item=item,
        decider=actor,
        decider_label=actor.get_username(),
        decider_roles=user_roles(actor),
        decision=decision,
        comment=comment,
        digest=digest,
    )
    # Approvals count only for what is pending now: an edit (a new digest) voids approvals of what was before.
    approvals = item.decisions.filter(decision=Decision.APPROVE, digest=digest).count()
    final = decision == Decision.REJECT or approvals >= item.approvals_required
    audit_record(
        actor=audit_actor(actor),
        action=f"governance.review.{'approved' if decision == Decision.APPROVE else 'rejected'}",
        target=item,
        details={
            "comment": comment,
            "digest": digest,
            "approvals": approvals,
            "required": item.approvals_required,
            "final": final,
            "roles": user_roles(actor),
        },
    )
    if final:
        now = timezone.now()
        item.status = ReviewStatus.APPROVED if decision == Decision.APPROVE else ReviewStatus.REJECTED
        item.decided_at = now
        item.save(update_fields=["status", "decided_at"])
        if version is not None:
            _version_settle(version, item.status, now)
        review_item_decided.send(sender=ReviewItem, item=item)
    return item


def _version_settle(version: Version, outcome: str, when: dt.datetime) -> None:
    status = {
        ReviewStatus.APPROVED: VersionStatus.APPROVED,
        ReviewStatus.REJECTED: VersionStatus.REJECTED,
        ReviewStatus.EXPIRED: VersionStatus.EXPIRED,
    }[ReviewStatus(outcome)]
    version.status, version.decided_at = status, when
    version.save(update_fields=["status", "decided_at"])
    obj = version.object
    if status == VersionStatus.APPROVED and obj.draft_authors.exists() and spec_checksum(obj.draft) == version.checksum:
        obj.draft_authors.clear()  # everything in the draft is approved now; later edits start a new authorship
    audit_record(
        actor=current_actor() or Actor.system("governance"),
        action=f"governance.{version.object.kind}.version_{status}",
        target=version,
        details={"version": version.number, "checksum": version.checksum},
    )


def review_items_expire(*, now: dt.datetime | None = None) -> int:
    """Expire pending items past their due time: expiry denies. Returns how many expired."""
    now = now or timezone.now()
    expired = 0
    for pk in ReviewItem.objects.filter(status=ReviewStatus.PENDING, due_at__lt=now).values_list("pk", flat=True):
        with transaction.atomic(), audit_context(actor=Actor.system("review-expiry")):
            item = ReviewItem.objects.select_for_update().get(pk=pk)
            if item.status != ReviewStatus.PENDING:
                continue  # decided while we were looking
            item.status, item.decided_at = ReviewStatus.EXPIRED, now
            item.save(update_fields=["status", "decided_at"])
            audit_record(
                actor=Actor.system("review-expiry"),
                action="governance.review.expired",
                target=item,
                details={"due_at": item.due_at.isoformat(), "outcome": "denied"},
            )
            if item.version is not None:
                _version_settle(item.version, ReviewStatus.EXPIRED, now)
            review_item_expired.send(sender=ReviewItem, item=item)
            expired += 1
    return expired
