"""Reads that take more than a filter: version references, diffs, released policies."""

import hashlib
from typing import Any

from audit import integrity
from config.errors import DomainError, NotFound
from governance.diff import spec_diff
from governance.models import GovernedObject, LabelPointer, ReviewItem, Version
from governance.registry import get_kind


def version_by_ref(obj: GovernedObject, ref: str) -> Version:
    """A version of ``obj`` by number (``3``) or by the label pointing at it (``production``)."""
    if ref.isdigit():
        version = obj.versions.filter(number=int(ref)).first()
        if version is None:
            raise NotFound(f"{obj} has no version {ref}.")
        return version
    pointer = LabelPointer.objects.filter(object=obj, label__name=ref).select_related("version").first()
    if pointer is None:
        raise DomainError(
            f"{obj} has no version under the label {ref!r}.", fields={"ref": ["Use a version number or a set label."]}
        )
    return pointer.version


def versions_diff(old: Version | None, new: Version) -> dict[str, Any]:
    return {
        "from": old.number if old else None,
        "to": new.number,
        "changes": spec_diff(old.spec if old else None, new.spec),
    }


def review_shown(item: ReviewItem) -> dict[str, Any]:
    """Exactly what a decider is shown: the item's payload and, for a configuration review, which version
    the diff is against. Released labels move, so this is computed when shown, not stored."""
    if item.version is None:
        return item.payload
    label = item.payload.get("label", "production")
    pointer = LabelPointer.objects.filter(object_id=item.version.object_id, label__name=label).select_related("version")
    current = pointer.first()
    return {**item.payload, "against": current.version.number if current else None}


def review_digest(item: ReviewItem) -> str:
    """The digest a decision is bound to: SHA-256 over the canonical JSON of ``review_shown``."""
    return hashlib.sha256(integrity.canonical_json(review_shown(item)).encode()).hexdigest()


def review_diff(item: ReviewItem) -> dict[str, Any] | None:
    """For a configuration review: the diff against what runs under the target label now."""
    version = item.version
    if version is None:
        return None
    label = item.payload.get("label", "production")
    pointer = LabelPointer.objects.filter(object_id=version.object_id, label__name=label).select_related("version")
    current = pointer.first()
    released = current.version if current else None
    return {"label": label, **versions_diff(released, version)}


def released_specs(kind: str, label: str) -> list[tuple[str, int, dict[str, Any]]]:
    """``(slug, version number, spec)`` of every object of ``kind`` released under ``label``."""
    pointers = (
        LabelPointer.objects.filter(object__kind=kind, label__name=label)
        .select_related("object", "version")
        .order_by("object__slug")
    )
    return [(p.object.slug, p.version.number, p.version.spec) for p in pointers]


def draft_validation(obj: GovernedObject) -> dict[str, Any]:
    """What submitting the draft now would say: field errors, else the results of the kind's checks."""
    governed = get_kind(obj.kind)
    errors = governed.validate(obj.draft)
    checks = [] if errors else [check(obj.draft).as_dict() for check in governed.checks]
    return {"valid": not errors, "errors": errors, "checks": checks}
