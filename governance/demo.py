"""Demo data goes through the real lifecycle: drafted by an editor, approved by approvers, released."""

from typing import Any

from django.contrib.auth.models import User

from governance import services
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
