"""The whole governed-configuration lifecycle through the API: draft, submit, four-eyes review,
release, a second release, rollback; every step in the audit trail with the right actor."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from audit.models import AuditEvent
from governance.models import ReviewItem, ReviewStatus
from governance.services import label_resolve

pytestmark = pytest.mark.django_db

GUIDE = {
    "description": "Warm, plain, brief.",
    "banned": [{"phrase": "cheap", "severity": "block", "suggestion": "affordable"}],
    "substitutions": [{"phrase": "guys", "replacement": "everyone"}],
    "max_sentence_words": 25,
    "examples": [
        {"text": "Thanks for waiting, your order is on its way.", "compliant": True},
        {"text": "Our cheap plans are great.", "compliant": False},
    ],
}


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("sequence"))


@pytest.fixture
def as_editor(api_as, editor: User) -> APIClient:
    return api_as(editor)


@pytest.fixture
def as_approver(api_as, approver: User) -> APIClient:
    return api_as(approver)


def create_and_submit(client: APIClient, draft: dict[str, Any], note: str = "first") -> dict[str, Any]:
    response = client.post(
        "/api/style-guides/", {"slug": "brand", "name": "Brand voice", "draft": draft}, format="json"
    )
    assert response.status_code == 201, response.json()
    response = client.post("/api/style-guides/brand/submit/", {"note": note}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def approve(client: APIClient, number: int) -> Any:
    version = client.get(f"/api/style-guides/brand/versions/{number}/").json()
    return client.post(
        f"/api/style-guides/brand/versions/{number}/approve/",
        {"digest": version["review"]["digest"], "comment": "reads well"},
        format="json",
    )


def release(client: APIClient, number: int, note: str) -> Any:
    return client.post(
        "/api/releases/",
        {"note": note, "moves": [{"kind": "style_guide", "slug": "brand", "label": "production", "version": number}]},
        format="json",
    )


def test_the_whole_lifecycle(as_editor: APIClient, as_approver: APIClient, editor: User, approver: User) -> None:
    version = create_and_submit(as_editor, GUIDE)
    assert (version["number"], version["status"], version["author"]) == (1, "pending_review", editor.username)
    assert version["checks"][0]["name"] == "style_guide.examples"
    assert version["checks"][0]["passed"] is True

    # The author may not approve their own version, even holding the permission (here: they lack it too).
    refused = approve(as_editor, 1)
    assert refused.status_code == 403

    approved = approve(as_approver, 1)
    assert approved.status_code == 200, approved.json()
    assert approved.json()["status"] == "approved"

    first = release(as_approver, 1, "launch the brand voice")
    assert first.status_code == 201, first.json()
    assert label_resolve(kind="style_guide", slug="brand", label="production").number == 1

    changed = {**GUIDE, "max_sentence_words": 20}
    assert as_editor.patch("/api/style-guides/brand/", {"draft": changed}, format="json").status_code == 200
    v2 = as_editor.post("/api/style-guides/brand/submit/", {"note": "shorter sentences"}, format="json").json()
    assert v2["number"] == 2
    review = as_approver.get(f"/api/reviews/{v2['review']['id']}/").json()
    assert review["diff"]["from"] == 1
    assert review["diff"]["changes"] == [{"path": "max_sentence_words", "change": "changed", "old": 25, "new": 20}]
    assert approve(as_approver, 2).status_code == 200
    second = release(as_approver, 2, "shorter sentences")
    assert second.status_code == 201
    assert label_resolve(kind="style_guide", slug="brand", label="production").number == 2

    rollback = as_approver.post(
        f"/api/releases/{second.json()['id']}/rollback/", {"reason": "too terse"}, format="json"
    )
    assert rollback.status_code == 201, rollback.json()
    assert rollback.json()["moves"] == [
        {"kind": "style_guide", "slug": "brand", "label": "production", "from_version": 2, "to_version": 1}
    ]
    assert label_resolve(kind="style_guide", slug="brand", label="production").number == 1

    trail = [
        ("governance.style_guide.created", editor),
        ("governance.style_guide.version_submitted", editor),
        ("governance.review.approved", approver),
        ("governance.release.created", approver),
        ("governance.style_guide.draft_updated", editor),
        ("governance.release.rolled_back", approver),
    ]
    for action, user in trail:
        recorded = events(action)
        assert recorded, action
        assert {event.actor_label for event in recorded} == {user.username}, action
        assert all(event.actor_type == "api_client" for event in recorded), action
    assert len(events("governance.release.created")) == 2
    assert events("governance.release.rolled_back")[0].details["reason"] == "too terse"


def test_self_review_is_refused_even_for_an_approver(api_as, approver: User, make_user) -> None:
    from governance.roles import Role

    both = make_user("ed-and-approver", Role.EDITOR)
    from audit.context import Actor
    from governance.services import user_role_assign

    user_role_assign(actor=Actor.system("tests"), user=both, role=Role.APPROVER)
    client = api_as(both)
    create_and_submit(client, GUIDE)
    response = approve(client, 1)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "self_review"
    assert "your own" in response.json()["error"]["message"]
    assert ReviewItem.objects.get().status == ReviewStatus.PENDING


def test_a_stale_digest_is_refused(as_editor: APIClient, as_approver: APIClient) -> None:
    create_and_submit(as_editor, GUIDE)
    response = as_approver.post("/api/style-guides/brand/versions/1/approve/", {"digest": "0" * 64}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "stale_digest"


def test_failing_checks_refuse_the_submit_naming_each_error(as_editor: APIClient) -> None:
    """A version its checks fail could only be rejected: it is refused on submit instead of sent to reviewers."""
    bad = {**GUIDE, "examples": [{"text": "Get our cheap deal!", "compliant": True}]}
    as_editor.post("/api/style-guides/", {"slug": "brand", "name": "Brand voice", "draft": bad}, format="json")

    response = as_editor.post("/api/style-guides/brand/submit/", {}, format="json")

    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "checks_failed"
    [messages] = error["fields"].values()
    assert list(error["fields"]) == ["checks.style_guide.examples"]
    assert any("cheap" in message for message in messages)
    assert not ReviewItem.objects.exists()


def test_invalid_draft_is_refused_on_submit_with_field_errors(as_editor: APIClient) -> None:
    response = as_editor.post(
        "/api/style-guides/", {"slug": "brand", "name": "Brand", "draft": {"max_sentence_words": "long"}}, format="json"
    )
    assert response.status_code == 201
    response = as_editor.post("/api/style-guides/brand/submit/", {}, format="json")
    assert response.status_code == 400
    assert "draft.max_sentence_words" in response.json()["error"]["fields"]
    assert not ReviewItem.objects.exists()


def test_resolving_an_unset_label_is_an_error(as_editor: APIClient) -> None:
    from config.errors import Conflict

    create_and_submit(as_editor, GUIDE)
    with pytest.raises(Conflict, match="points at no version"):
        label_resolve(kind="style_guide", slug="brand", label="production")
