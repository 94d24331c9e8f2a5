"""From production to a scenario: a conversation or a run becomes a scenario of a suite's draft, in one action.

The scenario keeps what happened as its inputs (the user's turns; the run's input, each tool's results as
fixtures, the approvals as they were decided) and no expectations: an editor adds them and submits the suite,
which is then reviewed like any change. Nothing changes by itself: feedback becomes a test only through a person
and a review. The suite is created for the conversation's persona (the run's agent) when there is none yet.
"""

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from agents.models import Run, Step, StepKind, StepStatus
from audit.services import audit_record
from config.errors import DomainError
from evaluations.suites import SUITE_KIND
from governance import services
from governance.models import GovernedObject, ReviewStatus
from personas.models import Conversation, Role

DECISIONS = {ReviewStatus.APPROVED: "approve", ReviewStatus.REJECTED: "reject"}


@transaction.atomic
def scenario_from_conversation(
    *, actor: User, suite: str, conversation: Conversation, name: str = ""
) -> dict[str, Any]:
    """Add ``conversation`` to ``suite``'s draft as a scenario of its user turns; the scenario added."""
    services.require_permission(actor, "personas.view_conversation", "make a scenario of a conversation")
    turns = [{"user": text} for text in conversation.messages.filter(role=Role.USER).values_list("text", flat=True)]
    if not turns:
        raise DomainError(
            "The conversation has no user message to make a scenario of.", fields={"conversation": ["No user message."]}
        )
    subject = {"kind": "persona", "slug": conversation.persona.slug}
    scenario = {"name": name or f"conversation {str(conversation.pk)[:8]}", "turns": turns}
    return _add(actor, suite, subject, scenario, source=f"personas.conversation:{conversation.pk}")


@transaction.atomic
def scenario_from_run(*, actor: User, suite: str, run: Run, name: str = "") -> dict[str, Any]:
    """Add ``run`` to ``suite``'s draft as a scenario: its input, its tools' results as fixtures, its approvals."""
    services.require_permission(actor, "agents.view_run", "make a scenario of a run")
    steps = list(run.steps.filter(kind=StepKind.TOOL_CALL).select_related("tool", "review").order_by("seq"))
    scenario: dict[str, Any] = {"name": name or f"run {str(run.pk)[:8]}", "input": run.input}
    fixtures: dict[str, list[dict[str, Any]]] = {}
    for step in steps:
        if step.tool is not None and step.status in (StepStatus.SUCCEEDED, StepStatus.FAILED):
            outcome = {"error": step.error} if step.status == StepStatus.FAILED else {"result": step.result}
            fixtures.setdefault(step.tool.name, []).append({"arguments": step.arguments or {}, **outcome})
    approvals = [_approval(step) for step in steps if step.review is not None and step.review.status in DECISIONS]
    if fixtures:
        scenario["fixtures"] = fixtures
    if approvals:
        scenario["approvals"] = approvals
    subject = {"kind": "agent", "slug": run.agent.slug}
    return _add(actor, suite, subject, scenario, source=f"agents.run:{run.pk}")


def _approval(step: Step) -> dict[str, str]:
    assert step.tool is not None
    assert step.review is not None
    return {"tool": step.tool.name, "decision": DECISIONS[ReviewStatus(step.review.status)]}


def _add(actor: User, slug: str, subject: dict[str, str], scenario: dict[str, Any], *, source: str) -> dict[str, Any]:
    obj = GovernedObject.objects.filter(kind=SUITE_KIND, slug=slug).first()
    draft: dict[str, Any]
    if obj is None:
        draft = {"subject": subject, "scenarios": [scenario]}
        name = f"{subject['slug']} scenarios"
        obj = services.governed_object_create(actor=actor, kind=SUITE_KIND, slug=slug, name=name, draft=draft)
    else:
        draft = dict(obj.draft)
        if draft.get("subject") != subject:
            raise DomainError(
                f"The suite {slug!r} is not for the {subject['kind']} {subject['slug']!r}.",
                fields={"suite": [f"Its subject is {draft.get('subject')!r}."]},
            )
        scenarios = draft.get("scenarios", [])
        if not isinstance(scenarios, list):
            raise DomainError(
                f"The draft of the suite {slug!r} has no list of scenarios to add to: fix the draft first.",
                fields={"suite": ["Its draft's scenarios are not a list."]},
            )
        taken = {existing.get("name") for existing in scenarios if isinstance(existing, dict)}
        base, number = scenario["name"], 2
        while scenario["name"] in taken:
            scenario["name"], number = f"{base} ({number})", number + 1
        draft["scenarios"] = [*scenarios, scenario]
        services.draft_update(actor=actor, obj=obj, draft=draft)
    audit_record(
        actor=services.audit_actor(actor),
        action="evaluations.scenario.captured",
        target=obj,
        details={"scenario": scenario["name"], "source": source},
    )
    return scenario
