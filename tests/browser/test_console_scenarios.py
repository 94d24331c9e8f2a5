"""The console's main scenarios, driven in headless Chromium through the real admin pages by people in their roles,
and judged by what the pages show and by what the database and the audit trail hold.

Agent runs are started through the service and advanced in-process with ``runtime.advance``, as a worker would: the
console's "approve" enqueues the run's next advance, which is captured here (never sent to Celery) and then run.
"""

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from agents import runtime
from agents.models import Run, RunStatus, StepStatus
from agents.services import run_start, tools_sync
from agents.services.common import ADVANCE_TASK
from audit.context import Actor
from audit.models import AuditEvent
from config import enqueue
from demo import agents as demo_agents
from demo import personas as demo_personas
from demo.models import DemoReplenishment
from governance import services as governance
from governance.models import GovernedObject, LabelPointer, ReviewItem, ReviewStatus, Version, VersionStatus
from governance.roles import Role
from tests.browser.conftest import PLAYWRIGHT_MISSING, Console, browser_required

if not browser_required():  # in CI a missing Playwright is an error, not a skip
    pytest.importorskip("playwright.sync_api", reason=PLAYWRIGHT_MISSING)

from playwright.sync_api import Dialog, Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_GREETING = "Hello, I'm {{persona_name}}! Ask me about an order, a return or a complaint."
WORKER = "browser-test"


@pytest.fixture
def second_approver(make_user: Callable[..., User]) -> User:
    return make_user("bea-second-approver", Role.APPROVER)


@pytest.fixture
def inventory(editor: User, approver: User, second_approver: User) -> None:
    """The demo's tools and agents (the inventory agent released under production), and its stock."""
    tools_sync(actor=Actor.system("tests"))
    demo_agents.load(editor=editor, approvers=[approver, second_approver])


@pytest.fixture
def support(inventory: None, editor: User, approver: User, second_approver: User) -> GovernedObject:
    """The demo's style guides and personas (after its agents, which the support persona hands off to), released to
    staging and production as v1."""
    demo_personas.load(editor=editor, approvers=[approver, second_approver])
    return GovernedObject.objects.get(kind="persona", slug="support")


class Enqueued:
    """Stands in for sending tasks (``config.enqueue.send``): records the runs the console asks to advance."""

    def __init__(self) -> None:
        self.run_ids: list[str] = []

    def send(self, task: str, *args: Any) -> None:
        if task == ADVANCE_TASK:
            self.run_ids.append(args[0])


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> Enqueued:
    """Captures every enqueue of a run, from this thread or the live server's: nothing reaches a worker."""
    captured = Enqueued()
    monkeypatch.setattr(enqueue, "send", captured.send)
    return captured


def parked_run(requester: User, enqueued: Enqueued, quantity: int = 500) -> tuple[Run, ReviewItem]:
    """``requester`` asks the inventory agent for a large replenishment: the run parks for an approver."""
    run, created = run_start(actor=requester, agent="inventory-agent", input={"sku": "SKU-123", "quantity": quantity})
    assert created
    assert enqueued.run_ids == [str(run.pk)]
    runtime.advance(run.pk, WORKER)
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL, run.error
    step = run.steps.get(status=StepStatus.AWAITING_APPROVAL)
    assert step.review is not None
    assert step.review.status == ReviewStatus.PENDING
    return run, step.review


def confirm(page: Page, button: str, question: str) -> None:
    """Press ``button`` and answer "OK" to the confirmation it asks, checking it asks ``question``."""
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_load_state()
    assert asked == [question]


def field(page: Page, name: str) -> str:
    """The text of a read-only field on an admin page."""
    return page.inner_text(f".field-{name} .readonly")


def events(action: str, **filters: Any) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("sequence"))


def start_conversation(client: APIClient) -> dict[str, Any]:
    response = client.post("/api/conversations/", {"persona": "support"}, format="json")
    assert response.status_code == 201, response.json()
    body: dict[str, Any] = response.json()
    return body


def greeting(persona: GovernedObject, template: str) -> str:
    """The greeting as a conversation shows it: the template with the persona's name filled in."""
    return template.replace("{{persona_name}}", persona.name)


# --- a. a persona's greeting: edit, submit, approve, release, roll back ------------------------------------------


def test_a_greeting_is_edited_reviewed_released_and_rolled_back_through_the_console(
    console: Console,
    support: GovernedObject,
    editor: User,
    approver: User,
    operator: User,
    outsider: User,
    api_as: Callable[[User], APIClient],
) -> None:
    old_greeting = Version.objects.get(object=support, number=1).spec["greeting"]
    assert old_greeting != NEW_GREETING
    client = api_as(outsider)
    first = start_conversation(client)
    assert first["version"] == 1
    assert first["messages"][0]["text"] == greeting(support, old_greeting)

    # The Editor edits the draft's JSON in the persona's page and saves it.
    page = console(editor)
    page.goto(f"/admin/personas/persona/{support.pk}/change/")
    draft = json.loads(page.input_value("#id_draft"))
    assert draft["greeting"] == old_greeting
    page.fill("#id_draft", json.dumps({**draft, "greeting": NEW_GREETING}, indent=2))
    page.click("input[name=_continue]")
    expect(page.locator("ul.messagelist")).to_contain_text("was changed successfully")
    assert "The draft is valid." in field(page, "draft_validation")
    support.refresh_from_db()
    assert support.draft["greeting"] == NEW_GREETING
    assert [e.actor_label for e in events("governance.persona.draft_updated", target_id=str(support.pk))] == [
        editor.username
    ]

    # ... and submits it for review, from the page's object tools.
    page.get_by_role("link", name="Submit for review").click()
    page.fill("#id_note", "A friendlier greeting.")
    confirm(page, "Submit for review", "Submit for review: are you sure?")
    expect(page.locator("ul.messagelist")).to_contain_text("Submitted persona support v2 for review.")
    v2 = Version.objects.get(object=support, number=2)
    assert (v2.status, v2.author, v2.note, v2.spec["greeting"]) == (
        VersionStatus.PENDING,
        editor,
        "A friendlier greeting.",
        NEW_GREETING,
    )
    assert re.search(r"/admin/governance/version/\d+/change/$", page.url)
    assert field(page, "status") == "pending review"
    # An Editor cannot release: the version page offers nothing of the kind.
    expect(page.get_by_role("link", name="Release this version")).to_have_count(0)

    # The Approver finds it in the review queue, sees the diff, and approves it.
    page = console(approver)
    page.goto("/admin/governance/reviewitem/")
    page.get_by_role("link", name=re.compile("persona support v2")).click()
    diff = page.locator(".field-diff_table")
    expect(diff).to_contain_text("Against v1 under production")
    row = diff.locator("table.diff tr", has=page.locator("code", has_text=re.compile(r"^greeting$")))
    expect(row).to_contain_text("changed")
    expect(row.locator("pre")).to_contain_text(f"-{old_greeting}\n+{NEW_GREETING}")
    page.fill("#id_comment", "Reads well.")
    confirm(page, "Approve", "Approve this?")
    expect(page.locator("ul.messagelist")).to_contain_text("You approved")
    expect(page.locator(".field-decisions_table")).to_contain_text(
        f"{approver.username} (Approver) approved: Reads well."
    )
    expect(page.locator("input[name=_approve]")).to_have_count(0)
    v2.refresh_from_db()
    assert v2.status == VersionStatus.APPROVED
    [approved] = events("governance.review.approved", actor_label=approver.username)[-1:]
    assert approved.details["comment"] == "Reads well."

    # ... then opens the version and releases it to production.
    page.locator(".field-subject_link a").click()
    page.get_by_role("link", name="Release this version").click()
    assert page.input_value("#id_label") == "production"
    page.fill("#id_note", "The friendlier greeting goes live.")
    confirm(page, "Release", "Release: are you sure?")
    expect(page.locator("ul.messagelist")).to_contain_text("Released persona support v2 under production.")
    assert LabelPointer.objects.get(object=support, label__name="production").version == v2
    [released] = events("governance.release.created", actor_label=approver.username)[-1:]
    assert released.details["note"] == "The friendlier greeting goes live."

    second = start_conversation(client)
    assert (second["version"], second["messages"][0]["text"]) == (2, greeting(support, NEW_GREETING))

    # Something is wrong with it after all: an Operator rolls production back to v1, with a reason.
    page = console(operator)
    page.goto(f"/admin/personas/persona/{support.pk}/change/")
    expect(page.locator(".field-current_labels")).to_contain_text("production → v2")
    page.get_by_role("link", name="Roll back a label").click()
    page.select_option("#id_label", "production")
    page.select_option("#id_version", label="persona support v1")
    page.fill("#id_reason", "Customers found the new greeting abrupt.")
    confirm(page, "Roll back", "Roll back: are you sure?")
    expect(page.locator("ul.messagelist")).to_contain_text(
        re.compile("persona support production now points at persona support v1.", re.IGNORECASE)
    )
    expect(page.locator(".field-current_labels")).to_contain_text("production → v1")
    assert LabelPointer.objects.get(object=support, label__name="production").version.number == 1
    [rolled_back] = events("governance.persona.rolled_back", target_id=str(support.pk))
    assert rolled_back.actor_label == operator.username
    assert (rolled_back.details["reason"], rolled_back.details["label"]) == (
        "Customers found the new greeting abrupt.",
        "production",
    )

    third = start_conversation(client)
    assert (third["version"], third["messages"][0]["text"]) == (1, greeting(support, old_greeting))
    # The conversation started on v2 keeps the version it started with.
    response = client.get(f"/api/conversations/{second['id']}/")
    assert response.json()["version"] == 2


# --- b. an agent's run waits for an approver, who lowers the quantity and approves it in the console -------------


def test_an_approver_edits_and_approves_a_parked_run_from_the_review_queue_and_the_run_succeeds(
    console: Console, inventory: None, operator: User, approver: User, enqueued: Enqueued
) -> None:
    run, item = parked_run(operator, enqueued, quantity=500)

    page = console(approver)
    page.goto("/admin/governance/reviewitem/")  # the queue opens on what is pending
    assert page.url.endswith("?status__exact=pending")
    page.get_by_role("link", name=str(item), exact=True).click()
    assert f"/admin/governance/reviewitem/{item.pk}/change/" in page.url
    shown = json.loads(page.inner_text(".field-shown pre"))
    assert (shown["tool"], shown["arguments"]) == ("inventory.place_replenishment", {"sku": "SKU-123", "quantity": 500})
    # The run so far: its timeline, with the stock check done and the order waiting.
    so_far = page.locator("#context table.timeline")
    expect(so_far).to_contain_text("inventory.check_stock")
    expect(so_far).to_contain_text('"on_hand": 4')
    expect(page.locator("#context")).to_contain_text(f"started by {operator.username}")

    # 500 is too many: the Approver makes it 250 and approves the call as edited.
    arguments = json.loads(page.input_value("#id_arguments"))
    assert arguments == {"sku": "SKU-123", "quantity": 500}
    page.fill("#id_arguments", json.dumps({**arguments, "quantity": 250}))
    page.fill("#id_comment", "Half of that is plenty.")
    confirm(page, "Approve with these arguments", "Approve the call with the arguments as edited?")
    expect(page.locator("ul.messagelist")).to_contain_text("You approved with edited arguments")
    expect(page.locator("#decide")).to_have_count(0)

    item.refresh_from_db()
    assert item.status == ReviewStatus.APPROVED
    assert enqueued.run_ids == [str(run.pk), str(run.pk)]  # the approval asked for the run to go on...
    runtime.advance(run.pk, WORKER)  # ... which a worker does
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    order = DemoReplenishment.objects.get()
    assert (order.sku, order.quantity) == ("SKU-123", 250)
    assert run.result == {"answer": f"Ordered 250 units of SKU-123 (order {order.pk})."}
    [edited] = events("agent.approval.edited", actor_label=approver.username)
    assert (edited.details["before"], edited.details["after"]) == (
        {"sku": "SKU-123", "quantity": 500},
        {"sku": "SKU-123", "quantity": 250},
    )

    page.goto(f"/admin/agents/run/{run.pk}/change/")
    assert field(page, "status") == "succeeded"
    expect(page.locator(".field-result_pretty")).to_contain_text(f"Ordered 250 units of SKU-123 (order {order.pk}).")
    placed = page.locator("table.timeline tr", has_text="inventory.place_replenishment").last
    expect(placed).to_contain_text('"quantity": 250')
    expect(placed).to_contain_text(f"{approver.username} (Approver) approved")
    expect(page.locator("#live")).to_have_count(0)  # finished: the page no longer refreshes itself


# --- c. whoever asked cannot decide ----------------------------------------------------------------------------


def test_the_requester_of_a_run_sees_they_cannot_decide_its_approval(
    console: Console, inventory: None, make_user: Callable[..., User], enqueued: Enqueued
) -> None:
    requester = make_user("rita-requester", Role.OPERATOR)
    governance.user_role_assign(actor=Actor.system("tests"), user=requester, role=Role.APPROVER)
    assert requester.has_perm("governance.decide_reviewitem")
    assert requester.has_perm("agents.start_run")
    run, item = parked_run(requester, enqueued)

    page = console(requester)
    page.goto(f"/admin/governance/reviewitem/{item.pk}/change/")
    expect(page.locator("#own-request")).to_have_text("You made this request: someone else has to decide it.")
    expect(page.locator("input[name=_approve]")).to_have_count(0)
    expect(page.locator("input[name=_reject]")).to_have_count(0)
    item.refresh_from_db()
    assert item.status == ReviewStatus.PENDING
    assert not item.decisions.exists()
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL


# --- d. read-only roles -----------------------------------------------------------------------------------------


def test_an_auditor_sees_the_audit_trail_and_verifies_the_chain(
    console: Console, support: GovernedObject, auditor: User
) -> None:
    page = console(auditor)
    page.goto("/admin/")
    page.get_by_role("link", name="Audit events").first.click()
    # Newest first: the Auditor's own login heads the trail.
    newest = page.locator("#result_list tbody tr").first
    expect(newest).to_contain_text("auth.login")
    expect(newest).to_contain_text(auditor.username)
    page.fill("#searchbar", "governance.release.created")
    page.press("#searchbar", "Enter")
    releases = AuditEvent.objects.filter(action="governance.release.created")
    expect(page.locator("#result_list tbody tr")).to_have_count(releases.count())
    page.get_by_role("link", name="Verify now").click()
    result = page.locator("#verify-result")
    expect(result).to_contain_text("Intact.")
    # The verification is itself on the trail, just after the head it verified.
    [verified] = events("audit.chain.verified")
    assert verified.actor_label == auditor.username
    head = AuditEvent.objects.get(sequence=verified.sequence - 1)
    checked = AuditEvent.objects.filter(sequence__lte=head.sequence).count()
    expect(result).to_contain_text(f"{checked} events")
    expect(result).to_contain_text(f"The head is event {head.sequence}")
    expect(result).to_contain_text(head.hash)


def test_a_viewer_sees_no_decisions_submissions_or_releases(
    console: Console, support: GovernedObject, editor: User, viewer: User
) -> None:
    governance.draft_update(actor=editor, obj=support, draft={**support.draft, "greeting": NEW_GREETING})
    pending = governance.version_submit(actor=editor, obj=support, note="For the viewer to look at.")
    item = pending.reviews.get()
    released = Version.objects.get(object=support, number=1)

    page = console(viewer)
    page.goto(f"/admin/governance/reviewitem/{item.pk}/change/")
    expect(page.locator(".field-diff_table")).to_contain_text("greeting")
    expect(page.locator("#decide")).to_have_count(0)
    expect(page.locator("input[name=_approve]")).to_have_count(0)
    expect(page.locator("#own-request")).to_have_count(0)

    page.goto(f"/admin/personas/persona/{support.pk}/change/")
    expect(page.locator(".field-version_history")).to_contain_text("v2")
    for tool in ("Submit for review", "Roll back a label"):
        expect(page.get_by_role("link", name=tool)).to_have_count(0)
    expect(page.locator("input[type=submit]")).to_have_count(0)  # read-only: no save either
    expect(page.locator("#id_draft")).to_have_count(0)

    page.goto(f"/admin/governance/version/{released.pk}/change/")
    assert field(page, "status") == "approved"
    expect(page.get_by_role("link", name="Release this version")).to_have_count(0)
    # Straight to the forms' addresses: refused.
    for url in (
        f"/admin/personas/persona/{support.pk}/submit/",
        f"/admin/personas/persona/{support.pk}/rollback/",
        f"/admin/governance/version/{released.pk}/release/",
    ):
        response = page.request.get(url)
        assert response.status == 403, url
    item.refresh_from_db()
    assert item.status == ReviewStatus.PENDING
