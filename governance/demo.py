"""Seed data goes through the real lifecycle: drafted by an editor, approved by approvers, released. Used by the demo
app (``demo``), the tests and the benchmarks; the product itself never calls it."""

from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import User

from governance import selectors, services
from governance.models import GovernedObject, ReviewStatus, VersionStatus


def released(editor: User, approvers: list[User], kind: str, slug: str, name: str, spec: dict[str, Any]) -> None:
    """Create ``slug`` of ``kind`` and release it to ``staging`` and ``production``, unless it is released already."""
    obj = GovernedObject.objects.filter(kind=kind, slug=slug).first()
    if obj is not None and obj.pointers.exists():
        return
    if obj is None:
        obj = services.governed_object_create(actor=editor, kind=kind, slug=slug, name=name, draft=spec)
    version = obj.versions.order_by("-number").first()
    if version is None or version.status not in {VersionStatus.PENDING, VersionStatus.APPROVED}:
        version = services.version_submit(actor=editor, obj=obj, note="Demo data")
    for approver in approvers:
        item = version.reviews.filter(status=ReviewStatus.PENDING).first()
        if item is None:
            break
        services.review_decide(
            actor=approver, item=item, decision="approve", digest=item.digest, comment="Demo data looks right."
        )
    moves = [services.Move(obj, label, version) for label in ("staging", "production")]
    services.release_create(actor=approvers[0], note=f"Demo: {name}", moves=moves)


def latest_released(
    approvers: list[User],
    objects: Sequence[GovernedObject],
    note: str,
    labels: Sequence[str] = ("staging", "production"),
) -> None:
    """Approve each object's latest version (by the approvers in turn, as many as it needs, each where they did not
    write it) and release every approved one under ``labels`` in one release; what is released there already stays.
    For versions the system submitted (tools synced from code), which nobody wrote."""
    moves = []
    for obj in objects:
        version = obj.versions.order_by("-number").first()
        if version is None:
            continue
        for approver in approvers:
            item = version.reviews.filter(status=ReviewStatus.PENDING).first()
            if item is None:
                break
            if not selectors.own_work(approver, item):
                digest = selectors.review_digest(item)
                services.review_decide(actor=approver, item=item, decision="approve", digest=digest, comment=note)
        version.refresh_from_db(fields=["status"])
        released = set(obj.pointers.filter(version=version).values_list("label__name", flat=True))
        if version.status == VersionStatus.APPROVED:
            moves += [services.Move(obj, label, version) for label in labels if label not in released]
    if moves:
        services.release_create(actor=approvers[0], note=note, moves=moves)
