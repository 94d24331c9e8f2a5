"""The demo's style guide and support persona, taken through the real lifecycle: drafted by the editor, approved
by an approver, released to ``staging`` and ``production``. Loaded by ``manage.py bootstrap``; idempotent."""

import json
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User

from governance import services as governance
from governance.models import GovernedObject, ReviewStatus, VersionStatus

EXAMPLES = Path(__file__).with_name("examples")


def example(name: str) -> dict[str, Any]:
    """One of the example specs in ``personas/examples/`` (``brand-voice``, ``support``)."""
    spec: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return spec


def _released(editor: User, approvers: list[User], kind: str, slug: str, name: str, spec: dict[str, Any]) -> None:
    obj = GovernedObject.objects.filter(kind=kind, slug=slug).first()
    if obj is not None and obj.pointers.exists():
        return
    if obj is None:
        obj = governance.governed_object_create(actor=editor, kind=kind, slug=slug, name=name, draft=spec)
    version = obj.versions.order_by("-number").first()
    if version is None or version.status not in {VersionStatus.PENDING, VersionStatus.APPROVED}:
        version = governance.version_submit(actor=editor, obj=obj, note="Demo data")
    for approver in approvers:
        item = version.reviews.filter(status=ReviewStatus.PENDING).first()
        if item is None:
            break
        governance.review_decide(
            actor=approver, item=item, decision="approve", digest=item.digest, comment="Demo data looks right."
        )
    moves = [governance.Move(obj, label, version) for label in ("staging", "production")]
    governance.release_create(actor=approvers[0], note=f"Demo: {name}", moves=moves)


def load(*, editor: User, approvers: list[User]) -> None:
    """Create and release the demo style guide and persona, unless they are released already."""
    _released(editor, approvers, "style_guide", "brand-voice", "Brand voice", example("brand-voice"))
    _released(editor, approvers, "persona", "support", "Sam", example("support"))
