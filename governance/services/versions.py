"""Governed configuration from draft to version: creating objects, editing drafts (people and the system), and
submitting a draft as a version for review, with its checks and pins."""

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from audit.context import Actor
from audit.services import audit_record
from config.errors import Conflict, DomainError, NotAllowed
from governance.models import (
    GovernedObject,
    ReviewKind,
    Version,
    VersionStatus,
)
from governance.registry import get_kind
from governance.services.common import audit_actor, label_by_name, require_permission, spec_checksum
from governance.services.reviews import review_item_open


@transaction.atomic
def governed_object_create(*, actor: User, kind: str, slug: str, name: str, draft: dict[str, Any]) -> GovernedObject:
    """Create a governed object with its first draft. Drafts may be incomplete; submitting validates."""
    governed = get_kind(kind)
    require_permission(actor, "governance.add_governedobject", f"create a {governed.title}")
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
    require_permission(actor, "governance.change_governedobject", f"edit a {governed.title}")
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
    require_permission(actor, "governance.submit_version", f"submit a {governed.title} for review")
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
    target_label = label_by_name(label)
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
        details={
            "version": version.number,
            "checksum": checksum,
            "label": target_label.name,
            "note": note,
            "checks_passed": version.checks_passed,
            **({"pins": pins} if pins else {}),
        },
    )
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
