"""Rows for the console's reads, written directly: the metrics and the dashboard only read, so the tests state
exactly the runs, steps, conversations, messages and review items the figures must come from."""

import datetime as dt
import hashlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from agents.models import FINISHED_RUN_STATUSES, Run, RunOutcome, RunStatus, Step
from governance.models import GovernedObject, ReviewItem, ReviewKind, ReviewStatus, Risk, Version
from personas.models import Conversation, ConversationStatus, Message, Role


class Cast:
    """Builds rows for one test; ``requester`` owns the runs and conversations."""

    def __init__(self, requester: User) -> None:
        self.requester = requester

    def subject(self, kind: str, slug: str) -> GovernedObject:
        obj = GovernedObject.objects.create(kind=kind, slug=slug, name=slug.title())
        spec: dict[str, Any] = {"name": slug}
        Version.objects.create(
            object=obj,
            number=1,
            name=slug,
            spec=spec,
            checksum=hashlib.sha256(slug.encode()).hexdigest(),
            author=self.requester,
            status="approved",
        )
        return obj

    def run(
        self,
        agent: GovernedObject,
        *,
        at: dt.datetime,
        status: str = RunStatus.SUCCEEDED,
        cost: str = "0",
        took: float | None = None,
        outcome: str | None = None,
    ) -> Run:
        """A run; a finished one has an outcome: ``outcome``, or by default completed when it succeeded and not
        completed otherwise."""
        if outcome is None and status in FINISHED_RUN_STATUSES:
            outcome = RunOutcome.COMPLETED if status == RunStatus.SUCCEEDED else RunOutcome.NOT_COMPLETED
        return Run.objects.create(
            agent=agent,
            version=agent.versions.get(),
            label="production",
            requested_by=self.requester,
            status=status,
            outcome=outcome,
            cost_used=Decimal(cost),
            created_at=at,
            finished_at=at + dt.timedelta(seconds=took) if took is not None else None,
        )

    def step(
        self, run: Run, kind: str, status: str, *, detail: dict[str, Any] | None = None, review: Any = None
    ) -> Step:
        seq = run.steps.count() + 1
        return Step.objects.create(run=run, seq=seq, kind=kind, status=status, detail=detail or {}, review=review)

    def conversation(
        self,
        persona: GovernedObject,
        *,
        at: dt.datetime,
        took: float | None = None,
        rating: int | None = None,
    ) -> Conversation:
        return Conversation.objects.create(
            persona=persona,
            version=persona.versions.get(),
            label="production",
            client=self.requester,
            status=ConversationStatus.CLOSED if took is not None else ConversationStatus.ACTIVE,
            rating=rating,
            created_at=at,
            closed_at=at + dt.timedelta(seconds=took) if took is not None else None,
        )

    def message(
        self, conversation: Conversation, role: str = Role.USER, *flag_kinds: str, **flag_extra: Any
    ) -> Message:
        seq = conversation.messages.count() + 1
        flags = [{"kind": kind, **flag_extra} for kind in flag_kinds]
        return Message.objects.create(conversation=conversation, seq=seq, role=role, text=f"message {seq}", flags=flags)

    def review_item(
        self,
        *,
        kind: str = ReviewKind.TOOL_APPROVAL,
        subject: Any = None,
        label: str = "something to decide",
        reason: str = "a test",
        created: dt.datetime | None = None,
        due: dt.datetime | None = None,
        status: str = ReviewStatus.PENDING,
    ) -> ReviewItem:
        created = created or timezone.now()
        return ReviewItem.objects.create(
            kind=kind,
            subject_type=subject._meta.label_lower if subject is not None else "agents.step",
            subject_id=str(subject.pk) if subject is not None else "0",
            subject_label=label,
            reason=reason,
            raised_by="tests",
            risk=Risk.MEDIUM,
            requested_by=self.requester,
            requested_by_label=self.requester.username,
            payload={},
            digest="0" * 64,
            status=status,
            created_at=created,
            due_at=due or created + dt.timedelta(hours=1),
        )

    def handover(self, conversation: Conversation, *, status: str = ReviewStatus.PENDING) -> ReviewItem:
        return self.review_item(
            kind=ReviewKind.HANDOVER,
            subject=conversation,
            label=str(conversation),
            reason="asked for a person",
            created=conversation.created_at + dt.timedelta(seconds=5),
            status=status,
        )


@pytest.fixture
def cast(make_user: Callable[..., User]) -> Cast:
    return Cast(make_user("cleo-client"))
