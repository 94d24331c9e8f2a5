"""Agents in tests: the test tools in the database, and agent definitions taken through the real lifecycle."""

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from django.contrib.auth.models import User

import tests.agents.tools  # noqa: F401  # registers the test tools in this process
from agents.services import AGENT_KIND
from governance import services
from governance.models import ReviewStatus, Version
from tests.support import granted, tools_release


@pytest.fixture
def test_tools(db: None, approver: User) -> None:
    """Every tool registered in this process (the demo's and the tests') synced; an agent's tools are released with
    it (``tools_release``)."""
    tools_release(approver, names=())


AgentFactory = Callable[..., Version]


@pytest.fixture
def agent(test_tools: None, editor: User, approver: User) -> AgentFactory:
    """``agent(slug, spec, labels=("production",))``: the editor creates and submits the agent, the approver
    approves it and releases it under ``labels``. Returns the released version."""

    def released(slug: str, spec: dict[str, Any], *, labels: Sequence[str] = ("production",)) -> Version:
        tools_release(approver, names=granted(spec))
        obj = services.governed_object_create(actor=editor, kind=AGENT_KIND, slug=slug, name=slug, draft=spec)
        version = services.version_submit(actor=editor, obj=obj, note="for a test")
        item = version.reviews.get(status=ReviewStatus.PENDING)
        services.review_decide(actor=approver, item=item, decision="approve", digest=item.digest)
        moves = [services.Move(obj, label, version) for label in labels]
        services.release_create(actor=approver, note=f"test agent {slug}", moves=moves)
        version.refresh_from_db()
        return version

    return released
