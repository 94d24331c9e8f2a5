"""Reads that take more than a filter: version references, diffs, released policies."""

import hashlib
from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

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


def own_work(user: Any, item: ReviewItem) -> bool:
    """Whether ``user`` asked for ``item`` or wrote any part of the version it reviews: then someone else decides.

    The one definition of separation of duties for review items (the services refuse, the console hides the
    buttons)."""
    if item.requested_by_id == user.pk:
        return True
    return item.version is not None and any(author.pk == user.pk for author in item.version.authors.all())


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


def draft_validation(obj: GovernedObject, label: str = "production") -> dict[str, Any]:
    """What submitting the draft now for ``label`` would say: field errors (what it could not pin under ``label``
    among them), else the results of the kind's checks."""
    governed = get_kind(obj.kind)
    errors = governed.validate(obj.draft)
    if not errors and governed.pins is not None:
        errors = governed.pins(obj.draft, label)[1]
    checks = [] if errors else [check(obj.draft).as_dict() for check in governed.checks]
    return {"valid": not errors, "errors": errors, "checks": checks}


# A version's spec never changes once submitted, so what runs (a turn, a run step) may keep specs in memory
# instead of reading them on every step. Bounded: the oldest entries go first.
_FROZEN_LIMIT = 2048
_frozen_by_id: dict[int, tuple[str, int, dict[str, Any]]] = {}
_frozen_by_ref: dict[tuple[str, str, int], dict[str, Any] | None] = {}


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _FROZEN_LIMIT:
        cache.pop(next(iter(cache)))
    cache[key] = value


def frozen_versions(ids: list[int]) -> list[tuple[str, int, dict[str, Any]]]:
    """``(slug, number, spec)`` of the versions ``ids``, in that order, read from the database once per process."""
    missing = [pk for pk in ids if pk not in _frozen_by_id]
    if missing:
        for version in Version.objects.select_related("object").filter(pk__in=missing):
            _remember(_frozen_by_id, version.pk, (version.object.slug, version.number, version.spec))
    return [_frozen_by_id[pk] for pk in ids if pk in _frozen_by_id]


def frozen_spec(kind: str, slug: str, number: int) -> dict[str, Any] | None:
    """The spec of version ``number`` of ``slug``, or None when there is no such version (not remembered)."""
    key = (kind, slug, number)
    if key not in _frozen_by_ref:
        version = Version.objects.filter(object__kind=kind, object__slug=slug, number=number).only("spec").first()
        if version is None:
            return None
        _remember(_frozen_by_ref, key, version.spec)
    return _frozen_by_ref[key]


@receiver(post_save, sender=Version, dispatch_uid="governance.forget_frozen_version")
def _forget(sender: Any, instance: Version, **kwargs: Any) -> None:
    """A saved version may reuse the id or the number of one remembered (a rolled-back transaction frees them on
    some databases): forget anything remembered under either."""
    _frozen_by_id.pop(instance.pk, None)
    obj = instance.object
    _frozen_by_ref.pop((obj.kind, obj.slug, instance.number), None)
