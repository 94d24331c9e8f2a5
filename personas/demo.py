"""The demo's style guide and support persona, taken through the real lifecycle: drafted by the editor, approved
by an approver, released to ``staging`` and ``production``. Loaded by ``manage.py bootstrap``; idempotent."""

import json
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User

from governance.demo import released

EXAMPLES = Path(__file__).with_name("examples")


def example(name: str) -> dict[str, Any]:
    """One of the example specs in ``personas/examples/`` (``brand-voice``, ``support``)."""
    spec: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return spec


def load(*, editor: User, approvers: list[User]) -> None:
    """Create and release the demo style guide and persona, unless they are released already."""
    released(editor, approvers, "style_guide", "brand-voice", "Brand voice", example("brand-voice"))
    released(editor, approvers, "persona", "support", "Sam", example("support"))
