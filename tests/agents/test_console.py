"""Runs and tool approvals in the console: the approval page shows the run so far and lets an approver edit the
arguments; the requester cannot decide; a run's page offers cancel and compensate to those who may."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse

from agents import runtime
from agents.models import Run, RunStatus, Step, StepStatus
from audit.context import Actor
from audit.models import AuditEvent
from governance.models import ReviewItem, ReviewKind, ReviewStatus
from governance.roles import Role
from governance.services import user_role_assign
from tests.agents.unit_tools import release_agent, spec, start_run
from tests.support import tools_release

pytestmark = pytest.mark.usefixtures("committed")

OWNER = "console-test"
NOTE_SCRIPT: list[dict[str, Any]] = [
    {"call": "unit.note", "arguments": {"message": "input.message"}},
    {"answer": "noted: {{ last }}"},
]


@pytest.fixture
def committed(transactional_db: None, approver: User) -> None:
    tools_release(approver)


@pytest.fixture
def parked(editor: User, approver: User, operator: User, django_capture_on_commit_callbacks: Any) -> Run:
    grants = [{"tool": "unit.note", "approval": "always", "constraints": ["size(args.message) < 40"]}]
    release_agent(editor, approver, "noter", spec(NOTE_SCRIPT, grants=grants))
    run = start_run(django_capture_on_commit_callbacks, operator, "noter", {"message": "first draft"})
    runtime.advance(run.pk, OWNER)
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL
    return run


def _item_page(item: ReviewItem) -> str:
    return reverse("admin:governance_reviewitem_change", args=[item.pk])


def test_an_approver_sees_the_run_so_far_and_approves_with_edited_arguments(
    client: Client, parked: Run, make_user: Callable[..., User], django_capture_on_commit_callbacks: Any
) -> None:
    decider = make_user("dora-decider", Role.APPROVER)
    item = ReviewItem.objects.get(kind=ReviewKind.TOOL_APPROVAL)
    client.force_login(decider)
    page = client.get(_item_page(item)).content.decode()
    assert "So far" in page
    assert reverse("admin:agents_run_change", args=[parked.pk]) in page
    assert "first draft" in page  # the proposed arguments, editable
    assert 'name="_edit"' in page

    with transaction.atomic():  # the resume is enqueued after commit: captured, never sent (the test advances)
        with django_capture_on_commit_callbacks(execute=False) as enqueued:
            response = client.post(
                _item_page(item),
                {
                    "digest": item.digest,
                    "comment": "shorter",
                    "arguments": '{"message": "final"}',
                    "_edit": "1",
                },
            )
        connection.run_on_commit.clear()
    assert (response.status_code, len(enqueued)) == (302, 1)
    item.refresh_from_db()
    assert item.status == ReviewStatus.APPROVED
    assert AuditEvent.objects.filter(action="agent.approval.edited", actor_label=decider.username).exists()
    runtime.advance(parked.pk, OWNER)
    parked.refresh_from_db()
    assert parked.status == RunStatus.SUCCEEDED, parked.error
    step = Step.objects.get(run=parked, tool__name="unit.note")
    assert (step.status, step.arguments) == (StepStatus.SUCCEEDED, {"message": "final"})


def test_edited_arguments_that_break_a_constraint_are_refused_and_said(
    client: Client, parked: Run, approver: User
) -> None:
    item = ReviewItem.objects.get(kind=ReviewKind.TOOL_APPROVAL)
    client.force_login(approver)
    response = client.post(
        _item_page(item),
        {
            "digest": item.digest,
            "comment": "",
            "arguments": '{"message": "' + "x" * 50 + '"}',
            "_edit": "1",
        },
        follow=True,
    )
    assert "break the grant" in response.content.decode()
    item.refresh_from_db()
    assert item.status == ReviewStatus.PENDING


def test_the_requester_of_a_run_cannot_decide_its_approval(
    client: Client,
    editor: User,
    approver: User,
    make_user: Callable[..., User],
    django_capture_on_commit_callbacks: Any,
) -> None:
    both = make_user("otto-and-april", Role.OPERATOR)
    user_role_assign(actor=Actor.system("tests"), user=both, role=Role.APPROVER)
    release_agent(editor, approver, "noter", spec(NOTE_SCRIPT, grants=[{"tool": "unit.note", "approval": "always"}]))
    run = start_run(django_capture_on_commit_callbacks, both, "noter", {"message": "mine"})
    runtime.advance(run.pk, OWNER)
    item = ReviewItem.objects.get(kind=ReviewKind.TOOL_APPROVAL)
    client.force_login(both)
    page = client.get(_item_page(item)).content.decode()
    assert "You made this request: someone else has to decide it." in page
    assert 'name="_approve"' not in page
    client.post(_item_page(item), {"digest": item.digest, "comment": "", "_approve": "1"})  # forced: refused
    item.refresh_from_db()
    assert item.status == ReviewStatus.PENDING


def test_a_viewer_sees_the_approval_but_no_decision_buttons(client: Client, parked: Run, viewer: User) -> None:
    item = ReviewItem.objects.get(kind=ReviewKind.TOOL_APPROVAL)
    client.force_login(viewer)
    page = client.get(_item_page(item))
    assert page.status_code == 200
    assert b'name="_approve"' not in page.content
    run_page = client.get(reverse("admin:agents_run_change", args=[parked.pk])).content.decode()
    assert "Cancel the run" not in run_page
    assert "refreshes itself" in run_page  # a live run


def test_an_operator_cancels_a_parked_run_from_its_page(client: Client, parked: Run, operator: User) -> None:
    client.force_login(operator)
    page = reverse("admin:agents_run_change", args=[parked.pk])
    assert "Cancel the run" in client.get(page).content.decode()
    assert client.post(page, {"reason": "not needed", "_cancel": "1"}).status_code == 302
    parked.refresh_from_db()
    assert parked.status == RunStatus.CANCELLED
    assert ReviewItem.objects.get(kind=ReviewKind.TOOL_APPROVAL).status == ReviewStatus.WITHDRAWN


def test_a_budget_overrun_opens_on_the_run_and_the_budget_and_an_approval_lets_the_run_go_on(
    client: Client, editor: User, approver: User, operator: User, django_capture_on_commit_callbacks: Any
) -> None:
    agent_spec = spec(NOTE_SCRIPT, budgets={"steps": 1}, escalation={"budget_overrun": "review"})
    release_agent(editor, approver, "frugal-noter", agent_spec)
    run = start_run(django_capture_on_commit_callbacks, operator, "frugal-noter", {"message": "restock"})
    runtime.advance(run.pk, OWNER)
    item = ReviewItem.objects.get(kind=ReviewKind.BUDGET_OVERRUN)
    client.force_login(approver)
    page = client.get(_item_page(item)).content.decode()
    assert reverse("admin:agents_run_change", args=[run.pk]) in page
    assert "its steps budget is 1 (1 used). Approving grants 1 more, once; rejecting ends the run." in page
    assert 'name="_edit"' not in page  # nothing to edit: the budget granted is the agent's own

    with transaction.atomic():  # the resume is enqueued after commit: captured, never sent
        with django_capture_on_commit_callbacks(execute=False) as enqueued:
            response = client.post(_item_page(item), {"digest": item.digest, "comment": "go on", "_approve": "1"})
        connection.run_on_commit.clear()
    assert (response.status_code, len(enqueued)) == (302, 1)
    run.refresh_from_db()
    assert (run.status, run.budget_extensions) == (RunStatus.QUEUED, {"steps": 1})
    run_page = client.get(reverse("admin:agents_run_change", args=[run.pk])).content.decode()
    assert "Budget extensions:" in run_page
    assert "{&quot;steps&quot;: 1}" in run_page  # what the approver granted, on the run's page


def test_the_decide_page_leads_with_what_is_asked_and_reject_does_not_look_like_approve(
    client: Client, parked: Run, make_user: Callable[..., User]
) -> None:
    item = ReviewItem.objects.get(kind=ReviewKind.TOOL_APPROVAL)
    ReviewItem.objects.filter(pk=item.pk).update(approvals_required=2)  # as for a critical tool
    first, second = make_user("dora-decider", Role.APPROVER), make_user("dan-decider", Role.APPROVER)
    client.force_login(first)
    page = client.get(_item_page(item)).content.decode()
    asked = page[page.index('<fieldset class="module" id="asked">') : page.index("</fieldset>")]
    assert "<h2>What is asked</h2>" in asked
    assert "Call <strong>unit.note</strong></p>" in asked  # a Python tool: no request to show
    assert '<tr><th scope="row">message</th><td><code>first draft</code></td></tr>' in asked
    assert f'class="review-risk review-risk-{item.risk}">{item.risk} risk</span>' in asked
    assert '<span id="asked-approvals">0 of 2 approvals</span>' in asked
    assert page.index('id="asked"') < page.index("So far") < page.index("Your decision")
    assert 'name="_approve" class="default"' in page
    assert 'name="_reject" class="review-reject"' in page

    client.post(_item_page(item), {"digest": item.digest, "comment": "", "_approve": "1"})
    client.force_login(second)
    assert '<span id="asked-approvals">1 of 2 approvals</span>' in client.get(_item_page(item)).content.decode()


def test_the_request_of_an_http_tool_is_read_from_what_the_decision_is_bound_to() -> None:
    from governance.admin import tool_request

    http = ReviewItem(payload={"tool": "orders.get", "request": {"method": "GET", "url_template": "https://x/{id}"}})
    assert tool_request(http) == {"method": "GET", "url": "https://x/{id}"}
    assert tool_request(ReviewItem(payload={"tool": "unit.note"})) is None


def test_a_run_page_links_its_conversation_and_its_audit_trail(client: Client, parked: Run, admin: User) -> None:
    conversation = "6f1d0c55-0d2b-4c39-8d43-0f3a4c1c5e01"
    Run.objects.filter(pk=parked.pk).update(origin=f"personas.conversation:{conversation}")
    client.force_login(admin)
    page = client.get(reverse("admin:agents_run_change", args=[parked.pk])).content.decode()
    origin = reverse("admin:personas_conversation_change", args=[conversation])
    assert f'<a id="run-origin" href="{origin}">its conversation</a>' in page
    trail = f"{reverse('admin:audit_auditevent_changelist')}?correlation_id={parked.correlation_id}"
    assert f'<a id="run-trail" href="{trail}">Its audit trail</a>' in page
    listed = client.get(trail)
    assert listed.status_code == 200
    assert listed.context_data is not None
    events = list(listed.context_data["cl"].queryset)
    assert events
    assert {event.correlation_id for event in events} == {parked.correlation_id}


def test_a_run_started_by_a_client_links_no_conversation_and_a_viewer_no_trail(
    client: Client, parked: Run, viewer: User
) -> None:
    client.force_login(viewer)
    page = client.get(reverse("admin:agents_run_change", args=[parked.pk])).content.decode()
    assert 'id="run-origin"' not in page
    assert 'id="run-trail"' not in page
