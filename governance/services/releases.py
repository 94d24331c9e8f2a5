"""Releases: moving labels to approved versions as a unit, rolling releases and labels back, labels themselves and
resolving a label to the version it points at."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from config.errors import Conflict, DomainError, NotAllowed, NotFound
from governance.models import (
    GovernedObject,
    Label,
    LabelPointer,
    Release,
    ReleaseKind,
    ReleaseMove,
    Version,
    VersionStatus,
)
from governance.registry import get_kind
from governance.services.common import audit_actor, label_by_name, require_permission


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
            labels[move.label] = label_by_name(move.label)
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
    require_permission(actor, "governance.release_version", "release versions")
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
    require_permission(actor, "governance.rollback_version", "roll releases back")
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
    require_permission(actor, "governance.rollback_version", "roll labels back")
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
    require_permission(actor, "governance.add_label", "add labels")
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
        .defer("version__object__draft")  # the object's working copy: not what runs, and large
        .filter(object__kind=kind, object__slug=slug, label__name=label)
        .first()
    )
    if pointer is None:
        label_by_name(label)  # an unknown label is a field error, not an unreleased object
        title = get_kind(kind).title
        if not GovernedObject.objects.filter(kind=kind, slug=slug).exists():
            raise NotFound(f"There is no {title} {slug!r}.")
        raise Conflict(
            f"The label {label!r} of {title} {slug!r} points at no version: release one first.", code="label_unset"
        )
    return pointer.version
