"""Guardrail policies as governed configuration: refused when broken, two approvers, released policies
evaluated at run time (failures recorded, fail safe) and in the dry-run endpoint."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from audit.context import Actor
from audit.models import AuditEvent
from governance import services
from governance.guardrails import guardrail_check, released_policies
from governance.models import GovernedObject, ReviewItem, ReviewStatus, VersionStatus
from governance.roles import Role

pytestmark = pytest.mark.django_db

NO_CARDS = {
    "description": "Never let card numbers through.",
    "checkpoint": "input",
    "condition": "'card' in pii_types",
    "effect": "deny",
    "severity": "high",
    "order": 10,
    "message": "Card numbers are not accepted here.",
    "tests": [
        {"name": "card", "facts": {"pii_types": ["card"]}, "expect": "deny"},
        {"name": "clean", "facts": {"pii_types": []}, "expect": "allow"},
    ],
}


@pytest.fixture
def second_approver(make_user) -> User:
    return make_user("bea-second-approver", Role.APPROVER)


def create(client: APIClient, draft: dict[str, Any], slug: str = "no-cards") -> None:
    response = client.post("/api/policies/", {"slug": slug, "name": slug, "draft": draft}, format="json")
    assert response.status_code == 201, response.json()


def approve_and_release(editor: User, approver: User, second: User, draft: dict[str, Any], slug: str) -> None:
    obj = services.governed_object_create(actor=editor, kind="guardrail_policy", slug=slug, name=slug, draft=draft)
    version = services.version_submit(actor=editor, obj=obj)
    item = ReviewItem.objects.get(version=version)
    services.review_decide(actor=approver, item=item, decision="approve", digest=item.digest)
    services.review_decide(actor=second, item=item, decision="approve", digest=item.digest)
    services.release_create(actor=approver, note=slug, moves=[services.Move(obj, "production", version)])


def test_a_condition_that_does_not_compile_is_refused_with_its_position(api_as, editor: User) -> None:
    client = api_as(editor)
    create(client, {**NO_CARDS, "condition": "'card' in "})
    response = client.post("/api/policies/no-cards/submit/", {}, format="json")
    assert response.status_code == 400
    messages = response.json()["error"]["fields"]["draft.condition"]
    assert "line 1, column 10" in messages[0]


def test_policies_need_two_distinct_approvers(api_as, editor: User, approver: User, second_approver: User) -> None:
    create(api_as(editor), NO_CARDS)
    version = api_as(editor).post("/api/policies/no-cards/submit/", {}, format="json").json()
    assert version["review"]["approvals_required"] == 2
    digest = version["review"]["digest"]
    first = api_as(approver).post("/api/policies/no-cards/versions/1/approve/", {"digest": digest}, format="json")
    assert first.json()["status"] == VersionStatus.PENDING
    again = api_as(approver).post("/api/policies/no-cards/versions/1/approve/", {"digest": digest}, format="json")
    assert again.status_code == 409
    second = api_as(second_approver).post(
        "/api/policies/no-cards/versions/1/approve/", {"digest": digest}, format="json"
    )
    assert second.json()["status"] == VersionStatus.APPROVED
    review = ReviewItem.objects.get()
    assert [d.decider_label for d in review.decisions.all()] == [approver.username, second_approver.username]
    assert all(d.decider_roles == "Approver" for d in review.decisions.all())


def test_failing_policy_tests_refuse_the_submit(api_as, editor: User) -> None:
    broken_tests = {**NO_CARDS, "tests": [{"name": "wrong", "facts": {"pii_types": ["card"]}, "expect": "allow"}]}
    create(api_as(editor), broken_tests)
    response = api_as(editor).post("/api/policies/no-cards/submit/", {}, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "checks_failed"
    [message] = error["fields"]["checks.policy.tests"]
    assert "wrong" in message


def test_released_policies_decide_at_run_time_and_a_broken_one_fails_safe(
    editor: User, approver: User, second_approver: User
) -> None:
    approve_and_release(editor, approver, second_approver, NO_CARDS, "no-cards")
    refs = released_policies("production")
    assert [(ref.slug, ref.version) for ref in refs] == [("no-cards", 1)]
    actor = Actor.system("tests")
    decision = guardrail_check(
        checkpoint="input", facts={"text": "my card is 4111 1111 1111 1111"}, policy_refs=refs, actor=actor
    )
    assert decision.effect == "deny"
    assert AuditEvent.objects.filter(action="governance.guardrail.matched").count() == 1
    clean = guardrail_check(checkpoint="input", facts={"text": "where is my parcel?"}, policy_refs=refs, actor=actor)
    assert clean.effect == "allow"

    fragile = {**NO_CARDS, "condition": "args.amount > 10", "tests": [], "order": 1}
    approve_and_release(editor, approver, second_approver, fragile, "fragile")
    decision = guardrail_check(
        checkpoint="input", facts={"text": "hello"}, policy_refs=released_policies("production"), actor=actor
    )
    assert decision.effect == "deny"
    failed = AuditEvent.objects.get(action="governance.guardrail.failed")
    assert "fragile" in failed.details["errors"][0]
    assert failed.details["effect"] == "deny"


def test_dry_run_with_a_draft_spec(api_as, viewer: User) -> None:
    response = api_as(viewer).post(
        "/api/policies/evaluate/",
        {"checkpoint": "input", "facts": {"text": "card 4111 1111 1111 1111"}, "spec": NO_CARDS},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["effect"] == "deny"
    assert body["facts"]["pii_types"] == ["card"]
    assert body["policies"] == [{"slug": "draft", "version": 0}]
    assert not AuditEvent.objects.filter(action__startswith="governance.guardrail").exists()


def test_dry_run_against_a_label(api_as, viewer: User, editor: User, approver: User, second_approver: User) -> None:
    approve_and_release(editor, approver, second_approver, NO_CARDS, "no-cards")
    response = api_as(viewer).post(
        "/api/policies/evaluate/", {"checkpoint": "input", "facts": {"text": "all fine"}}, format="json"
    )
    assert response.json()["effect"] == "allow"
    assert response.json()["policies"] == [{"slug": "no-cards", "version": 1}]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"checkpoint": "elsewhere", "facts": {}}, "checkpoint"),
        ({"checkpoint": "input", "facts": "text"}, "facts"),
        ({"checkpoint": "input"}, "facts"),
        ({"checkpoint": "input", "facts": {}, "spec": {**NO_CARDS, "effect": "shrug"}}, "spec.effect"),
        ({"checkpoint": "input", "facts": {}, "spec": {**NO_CARDS, "condition": "1 +"}}, "spec.condition"),
    ],
)
def test_dry_run_bad_input(api_as, viewer: User, body: dict[str, Any], field: str) -> None:
    response = api_as(viewer).post("/api/policies/evaluate/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_expiry_denies_by_default(editor: User) -> None:
    import datetime as dt

    from django.utils import timezone

    obj = services.governed_object_create(actor=editor, kind="guardrail_policy", slug="p", name="p", draft=NO_CARDS)
    version = services.version_submit(actor=editor, obj=obj)
    assert services.review_items_expire(now=timezone.now()) == 0
    later = timezone.now() + dt.timedelta(hours=73)
    assert services.review_items_expire(now=later) == 1
    item = ReviewItem.objects.get(version=version)
    version.refresh_from_db()
    assert (item.status, version.status) == (ReviewStatus.EXPIRED, VersionStatus.EXPIRED)
    event = AuditEvent.objects.get(action="governance.review.expired")
    assert (event.actor_label, event.details["outcome"]) == ("review-expiry", "denied")
    assert services.review_items_expire(now=later) == 0


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_periodic_expiry_task_runs_on_a_real_worker(celery_worker: str, make_user) -> None:
    import datetime as dt

    from governance.tasks import review_items_expire_task
    from tests.support import wait_for

    editor = make_user("late-editor", Role.EDITOR)
    obj = services.governed_object_create(actor=editor, kind="guardrail_policy", slug="p", name="p", draft=NO_CARDS)
    version = services.version_submit(actor=editor, obj=obj)
    ReviewItem.objects.filter(version=version).update(due_at=version.created_at - dt.timedelta(minutes=1))
    review_items_expire_task.delay()
    wait_for(
        lambda: ReviewItem.objects.filter(version=version, status=ReviewStatus.EXPIRED).exists(),
        message="the worker to expire the review",
    )
    assert GovernedObject.objects.get(pk=obj.pk).versions.get().status == VersionStatus.EXPIRED
