"""The demo's style guides and personas, taken through the real lifecycle: drafted by the editor, approved by an
approver, released to ``staging`` and ``production``. Loaded by ``manage.py bootstrap`` after the demo agents (the
support persona hands off to them); idempotent. Their specs are the examples of the persona spec in
``personas/examples/`` (docs/flows.md, docs/personas.md), which stay there as its documentation."""

import json
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User

from governance.demo import released
from personas import flows

EXAMPLES = Path(flows.__file__).with_name("examples")


def example(name: str) -> dict[str, Any]:
    """One of the example specs in ``personas/examples/``: ``brand-voice``, ``support`` (the reference example of
    docs/flows.md), ``shop-assistant`` (the demo's support persona, handing off to the demo agents),
    ``compliance-voice`` and ``kyc``."""
    spec: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return spec


def load(*, editor: User, approvers: list[User]) -> None:
    """Create and release the demo style guide and persona, unless they are released already."""
    released(editor, approvers, "style_guide", "brand-voice", "Brand voice", example("brand-voice"))
    released(editor, approvers, "persona", "support", "Sam", example("shop-assistant"))
    released(editor, approvers, "style_guide", "compliance-voice", "Compliance voice", example("compliance-voice"))
    released(editor, approvers, "persona", "kyc", "Vera", example("kyc"))
