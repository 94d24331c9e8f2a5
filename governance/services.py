"""Governance services: roles, API tokens, and governed configuration from draft to rollback.

Every function here is one state change: it checks who may do it, changes the rows in one transaction,
and records the audit event in that same transaction. API views, admin actions, tasks and management
commands all call these, so they behave the same way everywhere.
"""

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.management import create_contenttypes
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from audit import integrity
from audit.context import Actor, audit_context, current_actor
from audit.services import audit_record
from config.errors import Conflict, DomainError, NotAllowed, NotFound
from governance import selectors
from governance.models import (
    Decision,
    GovernedObject,
    Label,
    LabelPointer,
    Release,
    ReleaseKind,
    ReleaseMove,
    ReviewDecision,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
    Version,
    VersionStatus,
)
from governance.registry import get_kind
from governance.roles import CONSOLE_ROLES, ROLE_PERMISSIONS, Role
from governance.signals import review_item_decided, review_item_expired, review_item_opened

# Roles ---------------------------------------------------------------------------------------------


def role_permission_names(role: Role, available: list[str]) -> set[str]:
    """The ``app_label.codename`` permissions that ``role``'s patterns select from ``available``."""
    granted: set[str] = set()
    for pattern in ROLE_PERMISSIONS[role]:
        if pattern.startswith("-"):
            granted -= {name for name in granted if fnmatchcase(name, pattern[1:])}
        else:
            granted |= {name for name in available if fnmatchcase(name, pattern)}
    return granted


def roles_sync(*, using: str = "default") -> None:
    """Create the role groups if missing and give each exactly the permissions its patterns select.

    Runs after every ``migrate``. Changes are audited through the permission-change signal, as the
    system actor ``roles_sync``; a sync that changes nothing records nothing.
    """
    for app_config in apps.get_app_configs():
        create_contenttypes(app_config, verbosity=0, using=using)
        create_permissions(app_config, verbosity=0, using=using)
    permissions = {
        f"{permission.content_type.app_label}.{permission.codename}": permission
        for permission in Permission.objects.using(using).select_related("content_type")
    }
    with audit_context(actor=Actor.system("roles_sync")), transaction.atomic(using=using):
        for role in Role:
            group, _ = Group.objects.using(using).get_or_create(name=role.value)
            wanted = {permissions[name].pk for name in role_permission_names(role, list(permissions))}
            current = set(group.permissions.values_list("pk", flat=True))
            if current - wanted:
                group.permissions.remove(*(current - wanted))
            if wanted - current:
                group.permissions.add(*(wanted - current))


def _role(name: str) -> Role:
    try:
        return Role(name)
    except ValueError:
        choices = ", ".join(role.value for role in Role)
        raise DomainError(f"Unknown role {name!r}.", fields={"role": [f"Choose one of: {choices}."]}) from None


@transaction.atomic
def user_role_assign(*, actor: Actor, user: User, role: str) -> None:
    """Give ``user`` a role. A console role lets them sign in to the console; the Client role does not (an
    application's API user).

    Recorded as ``auth.user.roles_changed`` by the membership signal, attributed to ``actor``.
    """
    chosen = _role(role)
    group = Group.objects.get(name=chosen.value)
    with audit_context(actor=actor):
        user.groups.add(group)
    if chosen in CONSOLE_ROLES and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])


@transaction.atomic
def user_role_revoke(*, actor: Actor, user: User, role: str) -> None:
    """Take a role from ``user``. Recorded as ``auth.user.roles_changed``."""
    group = Group.objects.get(name=_role(role).value)
    with audit_context(actor=actor):
        user.groups.remove(group)


@transaction.atomic
def api_token_issue(*, user: User, ip: str) -> Token:
    """Hand ``user`` their API token after a password check; recorded as ``auth.token.issued``."""
    token, created = Token.objects.get_or_create(user=user)
    audit_record(
        actor=Actor.for_user(user), action="auth.token.issued", target=user, details={"ip": ip, "new": created}
    )
    return token


# Governed configuration -----------------------------------------------------------------------------


def audit_actor(user: User) -> Actor:
    """``user`` as an audit actor, keeping the request's view of them (an API client uses a token)."""
    actor = current_actor()
    if actor is not None and actor.id == str(user.pk):
        return actor
    return Actor.for_user(user)


def _require(user: User, permission: str, doing: str) -> None:
    if not user.has_perm(permission):
        raise NotAllowed(f"You may not {doing}: it needs the permission {permission}.")


def user_roles(user: User) -> str:
    names = sorted(user.groups.values_list("name", flat=True))
    if user.is_superuser:
        names.insert(0, "superuser")
    return ", ".join(names) or "no role"


def spec_checksum(spec: dict[str, Any]) -> str:
    return hashlib.sha256(integrity.canonical_json(spec).encode()).hexdigest()


@transaction.atomic
def governed_object_create(*, actor: User, kind: str, slug: str, name: str, draft: dict[str, Any]) -> GovernedObject:
    """Create a governed object with its first draft. Drafts may be incomplete; submitting validates."""
    governed = get_kind(kind)
    _require(actor, "governance.add_governedobject", f"create a {governed.title}")
    if GovernedObject.objects.filter(kind=kind, slug=slug).exists():
        raise Conflict(f"A {governed.title} with the slug {slug!r} exists already.", fields={"slug": ["Already used."]})
    obj = GovernedObject.objects.create(
        kind=kind, slug=slug, name=name, draft=draft, created_by=actor, draft_updated_by=actor
    )
    obj.draft_authors.add(actor)
    audit_record(actor=audit_actor(actor), action=f"governance.{kind}.created", target=obj, details={"name": name})
    return obj


@transaction.atomic
def draft_update(
    *, actor: User, obj: GovernedObject, name: str | None = None, draft: dict[str, Any] | None = None
) -> GovernedObject:
    """Edit an object's draft (and name). Versions already submitted are not affected."""
    governed = get_kind(obj.kind)
    _require(actor, "governance.change_governedobject", f"edit a {governed.title}")
    obj = GovernedObject.objects.select_for_update().get(pk=obj.pk)
    changed: list[str] = []
    if name is not None and name != obj.name:
        obj.name, changed = name, [*changed, "name"]
    if draft is not None and draft != obj.draft:
        obj.draft, changed = draft, [*changed, "draft"]
    if changed:
        obj.draft_updated_at, obj.draft_updated_by = timezone.now(), actor
        obj.save(update_fields=[*changed, "draft_updated_at", "draft_updated_by"])
        obj.draft_authors.add(actor)
        audit_record(
            actor=audit_actor(actor),
            action=f"governance.{obj.kind}.draft_updated",
            target=obj,
            details={"changed": changed, "draft_checksum": spec_checksum(obj.draft)},
        )
    return obj


@transaction.atomic
def draft_write_by_system(*, actor: Actor, kind: str, slug: str, name: str, draft: dict[str, Any]) -> GovernedObject:
    """Create ``slug`` with ``draft``, or replace its draft, on behalf of the system (``tools_sync`` writing what
    code declares). The system is nobody's co-author: it joins no draft's authors. Audited as for people."""
    if actor.type != "system":
        raise NotAllowed("Only the system writes drafts on its own behalf.")
    get_kind(kind)
    obj = GovernedObject.objects.select_for_update().filter(kind=kind, slug=slug).first()
    if obj is None:
        obj = GovernedObject.objects.create(kind=kind, slug=slug, name=name, draft=draft)
        audit_record(actor=actor, action=f"governance.{kind}.created", target=obj, details={"name": name})
    elif obj.draft != draft:
        obj.draft, obj.draft_updated_at, obj.draft_updated_by = draft, timezone.now(), None
        obj.save(update_fields=["draft", "draft_updated_at", "draft_updated_by"])
        audit_record(
            actor=actor,
            action=f"governance.{kind}.draft_updated",
            target=obj,
            details={"changed": ["draft"], "draft_checksum": spec_checksum(draft)},
        )
    return obj


@transaction.atomic
def version_submit(*, actor: User, obj: GovernedObject, note: str = "", label: str = "production") -> Version:
    """Freeze the draft as the next version and put it in the review queue.

    The spec must satisfy the kind's schema and validators (400 with field errors otherwise). The kind's
    checks run now: one with errors refuses the submit (400, ``checks_failed``, naming each error); their results
    travel with the version.
    ``label`` is where the version is meant to go: reviewers see the diff against what runs there, and a kind
    that pins other objects' versions (an agent its tools) pins those released under it.
    """
    governed = get_kind(obj.kind)
    _require(actor, "governance.submit_version", f"submit a {governed.title} for review")
    return _submit(obj=obj, note=note, label=label, author=actor, actor=audit_actor(actor))


@transaction.atomic
def version_submit_by_system(
    *, actor: Actor, obj: GovernedObject, note: str = "", label: str = "production"
) -> Version:
    """Submit the draft for review on behalf of the system (``tools_sync`` writing what code declares).

    The version has no author, only ``author_label`` naming the system actor, so any Approver may decide it;
    everything else is as ``version_submit``."""
    if actor.type != "system":
        raise NotAllowed("Only the system submits on its own behalf.")
    return _submit(obj=obj, note=note, label=label, author=None, actor=actor)


def _pins(obj: GovernedObject, label: str) -> list[dict[str, Any]]:
    """The versions of other objects the draft is to be approved with, resolved under ``label``."""
    governed = get_kind(obj.kind)
    if governed.pins is None:
        return []
    pins, errors = governed.pins(obj.draft, label)
    if errors:
        raise DomainError(
            f"The draft of {governed.title} {obj.slug!r} cannot be pinned under {label!r}.",
            code="invalid_spec",
            fields={f"draft.{path}" if path else "draft": messages for path, messages in errors.items()},
        )
    return pins


def _submit(*, obj: GovernedObject, note: str, label: str, author: User | None, actor: Actor) -> Version:
    governed = get_kind(obj.kind)
    target_label = _label(label)
    obj = GovernedObject.objects.select_for_update().get(pk=obj.pk)
    errors = governed.validate(obj.draft)
    if errors:
        raise DomainError(
            f"The draft of {governed.title} {obj.slug!r} is not valid.",
            code="invalid_spec",
            fields={f"draft.{path}" if path else "draft": messages for path, messages in errors.items()},
        )
    pins = _pins(obj, target_label.name)
    checksum = spec_checksum(obj.draft)
    latest = obj.versions.order_by("-number").first()
    unchanged = latest is not None and latest.checksum == checksum and latest.pins == pins
    if latest and unchanged and latest.status in {VersionStatus.PENDING, VersionStatus.APPROVED}:
        raise Conflict(f"Nothing changed since version {latest.number} ({latest.get_status_display()}).")
    results = [check(obj.draft).as_dict() for check in governed.checks]
    _refuse_failing_checks(governed.title, obj.slug, results)
    version = Version.objects.create(
        object=obj,
        number=(latest.number + 1) if latest else 1,
        name=obj.name,
        spec=obj.draft,
        checksum=checksum,
        author=author,
        author_label=actor.label,
        note=note,
        checks=results,
        pins=pins,
    )
    version.authors.set([*obj.draft_authors.all(), *([author] if author else [])])
    payload = {
        "kind": obj.kind,
        "slug": obj.slug,
        "version": version.number,
        "checksum": checksum,
        "label": target_label.name,
        "checks": results,
        **({"pins": pins} if pins else {}),
    }
    review_item_open(
        kind=ReviewKind.CONFIGURATION,
        subject=version,
        subject_label=f"{governed.title} {obj.slug} v{version.number}",
        version=version,
        reason=f"Four-eyes review of a new {governed.title} version" + (f": {note}" if note else ""),
        raised_by="governed configuration",
        risk=governed.review_risk,
        requested_by=author,
        requested_by_label=actor.label,
        approvals_required=governed.approvals_required,
        payload=payload,
        due_in=dt.timedelta(hours=settings.GOVERNANCE_REVIEW_HOURS),
    )
    audit_record(
        actor=actor,
        action=f"governance.{obj.kind}.version_submitted",
        target=version,
        details={"version": version.number, "checksum": checksum, "label": target_label.name, "note": note,
                 "checks_passed": version.checks_passed, **({"pins": pins} if pins else {})},
    )  # fmt: skip
    return version


def _refuse_failing_checks(title: str, slug: str, results: list[dict[str, Any]]) -> None:
    """A version whose checks have errors can only be rejected: refuse it now, naming each error, rather than send
    reviewers something they cannot approve."""
    failing = [result for result in results if not result["passed"]]
    if failing:
        raise DomainError(
            f"The draft of {title} {slug!r} fails its checks: {', '.join(result['name'] for result in failing)}.",
            code="checks_failed",
            fields={
                f"checks.{result['name']}": [f["message"] for f in result["findings"] if f["severity"] == "error"]
                for result in failing
            },
        )


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


def _label(name: str) -> Label:
    try:
        return Label.objects.get(name=name)
    except Label.DoesNotExist:
        known = ", ".join(Label.objects.values_list("name", flat=True))
        raise DomainError(f"There is no label {name!r}.", fields={"label": [f"Choose one of: {known}."]}) from None


@transaction.atomic
def review_decide(*, actor: User, item: ReviewItem, decision: str, digest: str, comment: str = "") -> ReviewItem:
    """Approve or reject a review item, bound to the digest of what the decider saw.

    Refused: deciding one's own request (separation of duties), deciding twice, a stale digest, an item
    no longer pending, and approving a version whose checks failed. An item needing two approvers is
    approved by the second distinct approval; any rejection rejects it.
    """
    _require(actor, "governance.decide_reviewitem", "decide reviews")
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
        details={"comment": comment, "digest": digest, "approvals": approvals, "required": item.approvals_required,
                 "final": final, "roles": user_roles(actor)},
    )  # fmt: skip
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


@dataclass(frozen=True)
class Move:
    """Put ``label`` of ``object`` on ``version`` (``None``: take the label off)."""

    object: GovernedObject
    label: str
    version: Version | None


def _apply_moves(*, actor: User, kind: str, note: str, moves: Sequence[Move], reverts: Release | None) -> Release:
    if not moves:
        raise DomainError("A release moves at least one label.", fields={"moves": ["Add at least one move."]})
    seen: set[tuple[int, str]] = set()
    for index, move in enumerate(moves):
        key = (move.object.pk, move.label)
        if key in seen:
            raise DomainError(
                "A release moves each label of an object once.", fields={f"moves[{index}]": ["Repeated."]}
            )
        seen.add(key)
        if move.version is not None:
            move.version.refresh_from_db(fields=["status"])  # decide by the stored status, not a stale copy
            if move.version.object_id != move.object.pk:
                raise DomainError(
                    "That version belongs to another object.", fields={f"moves[{index}].version": ["Wrong object."]}
                )
            if move.version.status != VersionStatus.APPROVED:
                raise Conflict(
                    f"{move.version} is {move.version.get_status_display()}: only approved versions can be released.",
                    fields={f"moves[{index}].version": ["Not approved."]},
                )
            if kind == ReleaseKind.RELEASE and move.version.authors.filter(pk=actor.pk).exists():
                raise NotAllowed(
                    f"You wrote part of {move.version}: someone who did not write it has to release it.",
                    code="own_work",
                    fields={f"moves[{index}].version": ["You wrote part of this version."]},
                )
    labels = {}
    for index, move in enumerate(moves):
        try:
            labels[move.label] = _label(move.label)
        except DomainError as error:
            raise DomainError(error.message, fields={f"moves[{index}].label": error.fields["label"]}) from None
    release = Release.objects.create(kind=kind, note=note, created_by=actor, reverts=reverts)
    for move in moves:
        label = labels[move.label]
        pointer = LabelPointer.objects.select_for_update().filter(object=move.object, label=label).first()
        ReleaseMove.objects.create(
            release=release,
            object=move.object,
            label=label,
            from_version=pointer.version if pointer else None,
            to_version=move.version,
        )
        if move.version is None:
            if pointer:
                pointer.delete()
        elif pointer:
            pointer.version, pointer.release, pointer.updated_at = move.version, release, timezone.now()
            pointer.save(update_fields=["version", "release", "updated_at"])
        else:
            LabelPointer.objects.create(object=move.object, label=label, version=move.version, release=release)
    return release


def _moves_detail(release: Release) -> list[dict[str, Any]]:
    return [
        {
            "kind": move.object.kind,
            "slug": move.object.slug,
            "label": move.label.name,
            "from": move.from_version.number if move.from_version else None,
            "to": move.to_version.number if move.to_version else None,
        }
        for move in release.moves.select_related("object", "label", "from_version", "to_version")
    ]


@transaction.atomic
def release_create(*, actor: User, note: str, moves: Sequence[Move]) -> Release:
    """Move one or more labels at once, atomically, recorded as one unit."""
    _require(actor, "governance.release_version", "release versions")
    if not note.strip():
        raise DomainError("A release needs a note.", fields={"note": ["Say what this release is for."]})
    release = _apply_moves(actor=actor, kind=ReleaseKind.RELEASE, note=note, moves=moves, reverts=None)
    audit_record(
        actor=audit_actor(actor),
        action="governance.release.created",
        target=release,
        details={"note": note, "moves": _moves_detail(release)},
    )
    return release


@transaction.atomic
def release_rollback(*, actor: User, release: Release, reason: str) -> Release:
    """Move the labels of ``release`` back to where they were before it, in one step."""
    _require(actor, "governance.rollback_version", "roll releases back")
    if not reason.strip():
        raise DomainError("A rollback needs a reason.", fields={"reason": ["Say why."]})
    release = Release.objects.select_for_update().get(pk=release.pk)
    if release.rolled_back_at is not None:
        raise Conflict(f"Release #{release.pk} was rolled back already.")
    moves = []
    for move in release.moves.select_related("object", "label", "from_version", "to_version"):
        current = LabelPointer.objects.filter(object=move.object, label=move.label).select_related("version").first()
        current_version = current.version if current else None
        if current_version != move.to_version:
            raise Conflict(
                f"{move.object} {move.label} has moved since release #{release.pk} "
                f"(now {f'v{current_version.number}' if current_version else 'nothing'}): "
                "roll back the later release first."
            )
        moves.append(Move(object=move.object, label=move.label.name, version=move.from_version))
    rollback = _apply_moves(actor=actor, kind=ReleaseKind.ROLLBACK, note=reason, moves=moves, reverts=release)
    release.rolled_back_at = timezone.now()
    release.save(update_fields=["rolled_back_at"])
    audit_record(
        actor=audit_actor(actor),
        action="governance.release.rolled_back",
        target=release,
        details={"reason": reason, "rollback": rollback.pk, "moves": _moves_detail(rollback)},
    )
    return rollback


@transaction.atomic
def label_rollback(*, actor: User, obj: GovernedObject, label: str, version: Version, reason: str) -> Release:
    """Put ``label`` of one object back on an earlier approved version, with a reason."""
    _require(actor, "governance.rollback_version", "roll labels back")
    if not reason.strip():
        raise DomainError("A rollback needs a reason.", fields={"reason": ["Say why."]})
    current = LabelPointer.objects.filter(object=obj, label__name=label).select_related("version").first()
    if current is None:
        raise Conflict(f"The label {label!r} of {obj} points at no version: there is nothing to roll back.")
    if version.number >= current.version.number:
        raise Conflict(
            f"{obj} {label} is at v{current.version.number}: a rollback goes to an earlier version; release "
            "newer ones instead.",
            fields={"version": [f"Choose a version before v{current.version.number}."]},
        )
    release = _apply_moves(
        actor=actor, kind=ReleaseKind.ROLLBACK, note=reason, moves=[Move(obj, label, version)], reverts=None
    )
    audit_record(
        actor=audit_actor(actor),
        action=f"governance.{obj.kind}.rolled_back",
        target=obj,
        details={"reason": reason, "label": label, "release": release.pk, "moves": _moves_detail(release)},
    )
    return release


DEFAULT_LABELS = {"staging": "Where new versions are tried first", "production": "What end users and live runs get"}


def labels_ensure_defaults(*, using: str = "default") -> None:
    """The labels every installation has (``staging``, ``production``); run after every ``migrate``."""
    for name, description in DEFAULT_LABELS.items():
        Label.objects.using(using).get_or_create(name=name, defaults={"description": description})


@transaction.atomic
def label_create(*, actor: User, name: str, description: str = "") -> Label:
    """Add a release label (Admins)."""
    _require(actor, "governance.add_label", "add labels")
    try:
        with transaction.atomic():
            label = Label.objects.create(name=name, description=description)
    except IntegrityError:
        raise Conflict(f"The label {name!r} exists already.", fields={"name": ["Already used."]}) from None
    audit_record(actor=audit_actor(actor), action="governance.label.created", target=label, details={"name": name})
    return label


def label_resolve(*, kind: str, slug: str, label: str) -> Version:
    """The version ``label`` points at for an object. A label that points nowhere is an error, never a fallback.

    Whatever starts running resolves once and keeps the version it got (pins it).
    """
    pointer = (
        LabelPointer.objects.select_related("version", "version__object")
        .filter(object__kind=kind, object__slug=slug, label__name=label)
        .first()
    )
    if pointer is None:
        _label(label)  # an unknown label is a field error, not an unreleased object
        title = get_kind(kind).title
        if not GovernedObject.objects.filter(kind=kind, slug=slug).exists():
            raise NotFound(f"There is no {title} {slug!r}.")
        raise Conflict(
            f"The label {label!r} of {title} {slug!r} points at no version: release one first.", code="label_unset"
        )
    return pointer.version
