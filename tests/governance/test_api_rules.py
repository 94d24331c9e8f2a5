"""Bad input anywhere in the governance API is a 4xx with field errors; roles are enforced by the server."""

from typing import Any

import pytest
from django.contrib.auth.models import User

from governance import services
from governance.models import GovernedObject, Label, Release, ReviewItem, Version

pytestmark = pytest.mark.django_db
SPEC = {"banned": [{"phrase": "cheap"}]}


@pytest.fixture
def approved(editor: User, approver: User) -> Version:
    obj = services.governed_object_create(actor=editor, kind="style_guide", slug="brand", name="Brand", draft=SPEC)
    version = services.version_submit(actor=editor, obj=obj)
    item = ReviewItem.objects.get(version=version)
    services.review_decide(actor=approver, item=item, decision="approve", digest=item.digest)
    return version


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "draft": {}}, "slug"),
        ({"slug": "not a slug!", "name": "x"}, "slug"),
        ({"slug": "x", "name": "x", "draft": [1]}, "draft"),
        ({"slug": "x", "name": ["x"]}, "name"),
    ],
)
def test_create_bad_input(api_as, editor: User, body: dict[str, Any], field: str) -> None:
    response = api_as(editor).post("/api/style-guides/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not GovernedObject.objects.exists()


def test_duplicate_slug_is_a_409(api_as, editor: User) -> None:
    client = api_as(editor)
    assert client.post("/api/style-guides/", {"slug": "x", "name": "x"}, format="json").status_code == 201
    response = client.post("/api/style-guides/", {"slug": "x", "name": "again"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["fields"] == {"slug": ["Already used."]}


def test_unknown_object_is_a_404(api_as, viewer: User) -> None:
    response = api_as(viewer).get("/api/style-guides/nope/")
    assert response.status_code == 404
    assert "no style guide 'nope'" in response.json()["error"]["message"]


def test_submit_to_an_unknown_label_is_a_400(api_as, editor: User, approved: Version) -> None:
    response = api_as(editor).post("/api/style-guides/brand/submit/", {"label": "moon"}, format="json")
    assert response.status_code == 400
    assert "label" in response.json()["error"]["fields"]


def test_submitting_an_unchanged_draft_again_is_a_409(api_as, editor: User, approved: Version) -> None:
    response = api_as(editor).post("/api/style-guides/brand/submit/", {}, format="json")
    assert response.status_code == 409
    assert "Nothing changed since version 1" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"moves": [{"kind": "style_guide", "slug": "brand", "label": "production", "version": 1}]}, "note"),
        ({"note": "x", "moves": []}, "moves"),
        ({"note": "x", "moves": [{"kind": "style_guide", "slug": "brand", "label": "production"}]}, "moves"),
        (
            {"note": "x", "moves": [{"kind": "style_guide", "slug": "nope", "label": "production", "version": 1}]},
            "moves[0].slug",
        ),
        (
            {"note": "x", "moves": [{"kind": "style_guide", "slug": "brand", "label": "production", "version": 9}]},
            "moves[0].version",
        ),
        (
            {"note": "x", "moves": [{"kind": "style_guide", "slug": "brand", "label": "moon", "version": 1}]},
            "moves[0].label",
        ),
        (
            {
                "note": "x",
                "moves": [
                    {"kind": "style_guide", "slug": "brand", "label": "production", "version": 1},
                    {"kind": "style_guide", "slug": "brand", "label": "production", "version": 1},
                ],
            },
            "moves[1]",
        ),
    ],
)
def test_release_bad_input(api_as, approver: User, approved: Version, body: dict[str, Any], field: str) -> None:
    response = api_as(approver).post("/api/releases/", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"]
    assert not Release.objects.exists()


def test_releasing_an_unapproved_version_is_a_409(api_as, editor: User, approver: User) -> None:
    obj = services.governed_object_create(actor=editor, kind="style_guide", slug="brand", name="Brand", draft=SPEC)
    services.version_submit(actor=editor, obj=obj)
    move = {"kind": "style_guide", "slug": "brand", "label": "production", "version": 1}
    response = api_as(approver).post("/api/releases/", {"note": "x", "moves": [move]}, format="json")
    assert response.status_code == 409
    assert "only approved versions" in response.json()["error"]["message"]


def test_rollback_needs_a_reason_and_happens_once(api_as, approver: User, approved: Version) -> None:
    client = api_as(approver)
    move = {"kind": "style_guide", "slug": "brand", "label": "production", "version": 1}
    release = client.post("/api/releases/", {"note": "x", "moves": [move]}, format="json").json()
    response = client.post(f"/api/releases/{release['id']}/rollback/", {}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()["error"]["fields"]
    assert client.post(f"/api/releases/{release['id']}/rollback/", {"reason": "x"}, format="json").status_code == 201
    again = client.post(f"/api/releases/{release['id']}/rollback/", {"reason": "x"}, format="json")
    assert again.status_code == 409


def test_rolling_back_an_older_release_after_a_newer_one_is_refused(
    api_as, editor: User, approver: User, approved: Version
) -> None:
    client = api_as(approver)
    move = {"kind": "style_guide", "slug": "brand", "label": "production", "version": 1}
    first = client.post("/api/releases/", {"note": "first", "moves": [move]}, format="json").json()
    services.draft_update(actor=editor, obj=approved.object, draft={"banned": [{"phrase": "dirt cheap"}]})
    v2 = services.version_submit(actor=editor, obj=approved.object)
    item = ReviewItem.objects.get(version=v2)
    services.review_decide(actor=approver, item=item, decision="approve", digest=item.digest)
    client.post("/api/releases/", {"note": "second", "moves": [{**move, "version": 2}]}, format="json")
    response = client.post(f"/api/releases/{first['id']}/rollback/", {"reason": "x"}, format="json")
    assert response.status_code == 409
    assert "roll back the later release first" in response.json()["error"]["message"]


def test_object_rollback_to_an_earlier_version(api_as, editor: User, approver: User, approved: Version) -> None:
    client = api_as(approver)
    move = {"kind": "style_guide", "slug": "brand", "label": "production", "version": 1}
    client.post("/api/releases/", {"note": "first", "moves": [move]}, format="json")
    services.draft_update(actor=editor, obj=approved.object, draft={"banned": [{"phrase": "dirt cheap"}]})
    v2 = services.version_submit(actor=editor, obj=approved.object)
    item = ReviewItem.objects.get(version=v2)
    services.review_decide(actor=approver, item=item, decision="approve", digest=item.digest)
    client.post("/api/releases/", {"note": "second", "moves": [{**move, "version": 2}]}, format="json")
    bad = client.post("/api/style-guides/brand/rollback/", {"label": "production", "version": 1}, format="json")
    assert bad.status_code == 400
    assert "reason" in bad.json()["error"]["fields"]
    response = client.post(
        "/api/style-guides/brand/rollback/",
        {"label": "production", "version": 1, "reason": "v2 confuses"},
        format="json",
    )
    assert response.status_code == 201
    assert client.get("/api/style-guides/brand/").json()["labels"] == {"production": 1}


@pytest.mark.parametrize(
    ("body", "field"),
    [({"digest": "nothex", "decision": "approve"}, "digest"), ({"digest": "a" * 64, "decision": "maybe"}, "decision")],
)
def test_decide_bad_input(api_as, approver: User, editor: User, body: dict[str, Any], field: str) -> None:
    obj = services.governed_object_create(actor=editor, kind="style_guide", slug="brand", name="Brand", draft=SPEC)
    version = services.version_submit(actor=editor, obj=obj)
    item = ReviewItem.objects.get(version=version)
    response = api_as(approver).post(f"/api/reviews/{item.pk}/decide/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_review_queue_filters(api_as, viewer: User, editor: User) -> None:
    obj = services.governed_object_create(actor=editor, kind="style_guide", slug="brand", name="Brand", draft=SPEC)
    services.version_submit(actor=editor, obj=obj)
    client = api_as(viewer)
    assert client.get("/api/reviews/?status=pending&kind=configuration").json()["count"] == 1
    assert client.get("/api/reviews/?overdue=true").json()["count"] == 0
    bad = client.get("/api/reviews/?status=sleeping")
    assert bad.status_code == 400
    assert "status" in bad.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("role_user", "method", "url", "body"),
    [
        ("viewer", "post", "/api/style-guides/", {"slug": "x", "name": "x"}),
        ("approver", "post", "/api/style-guides/", {"slug": "x", "name": "x"}),
        (
            "editor",
            "post",
            "/api/releases/",
            {"note": "x", "moves": [{"kind": "style_guide", "slug": "brand", "label": "production", "version": 1}]},
        ),
        ("operator", "post", "/api/style-guides/brand/submit/", {}),
        ("editor", "post", "/api/labels/", {"name": "canary"}),
        ("auditor", "patch", "/api/style-guides/brand/", {"name": "y"}),
    ],
)
def test_roles_are_enforced(api_as, request, approved: Version, role_user: str, method: str, url: str, body) -> None:
    client = api_as(request.getfixturevalue(role_user))
    response = getattr(client, method)(url, body, format="json")
    assert response.status_code == 403, response.json()
    assert "may not" in response.json()["error"]["message"]


def test_admin_adds_labels_once(api_as, admin: User) -> None:
    client = api_as(admin)
    response = client.post("/api/labels/", {"name": "canary", "description": "1% of traffic"}, format="json")
    assert response.status_code == 201
    assert Label.objects.filter(name="canary").exists()
    assert client.post("/api/labels/", {"name": "canary"}, format="json").status_code == 409
    assert client.post("/api/labels/", {"name": "not a slug"}, format="json").status_code == 400


def test_diff_between_versions_and_labels(
    api_as, viewer: User, editor: User, approver: User, approved: Version
) -> None:
    long_text = "Line one of the voice.\nLine two of the voice.\nLine three."
    services.draft_update(actor=editor, obj=approved.object, draft={**SPEC, "description": long_text})
    services.version_submit(actor=editor, obj=approved.object)
    client = api_as(viewer)
    diff = client.get("/api/style-guides/brand/diff/?from=1&to=2").json()
    assert diff["from"] == 1
    assert diff["to"] == 2
    (change,) = diff["changes"]
    assert (change["path"], change["change"]) == ("description", "added")
    assert "+Line two of the voice." in change["lines"]
    assert client.get("/api/style-guides/brand/diff/?from=production").status_code == 400
    assert client.get("/api/style-guides/brand/diff/?to=7").status_code == 404


def test_a_label_rollback_only_goes_back(api_as, approver: User, approved: Version) -> None:
    client = api_as(approver)
    body = {"label": "production", "version": 1, "reason": "x"}
    nothing = client.post("/api/style-guides/brand/rollback/", body, format="json")
    assert nothing.status_code == 409
    assert "points at no version" in nothing.json()["error"]["message"]
    move = {"kind": "style_guide", "slug": "brand", "label": "production", "version": 1}
    client.post("/api/releases/", {"note": "first", "moves": [move]}, format="json")
    same = client.post("/api/style-guides/brand/rollback/", body, format="json")
    assert same.status_code == 409
    assert same.json()["error"]["fields"] == {"version": ["Choose a version before v1."]}


def test_an_overdue_review_cannot_be_decided(api_as, approver: User, editor: User) -> None:
    import datetime as dt

    obj = services.governed_object_create(actor=editor, kind="style_guide", slug="brand", name="Brand", draft=SPEC)
    version = services.version_submit(actor=editor, obj=obj)
    item = ReviewItem.objects.get(version=version)
    ReviewItem.objects.filter(pk=item.pk).update(due_at=item.created_at - dt.timedelta(seconds=1))
    response = api_as(approver).post(
        f"/api/reviews/{item.pk}/decide/", {"decision": "approve", "digest": item.digest}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "expired"


def test_the_digest_changes_when_what_the_diff_is_against_moves(
    api_as, editor: User, approver: User, approved: Version, make_user
) -> None:
    from governance.roles import Role

    services.draft_update(actor=editor, obj=approved.object, draft={"banned": [{"phrase": "dirt cheap"}]})
    v2 = services.version_submit(actor=editor, obj=approved.object)
    client = api_as(make_user("other-approver", Role.APPROVER))
    shown = client.get(f"/api/reviews/{ReviewItem.objects.get(version=v2).pk}/").json()
    assert shown["diff"]["label"] == "production"
    services.release_create(
        actor=approver, note="v1 out", moves=[services.Move(approved.object, "production", approved)]
    )
    response = client.post(
        f"/api/reviews/{shown['id']}/decide/", {"decision": "approve", "digest": shown["digest"]}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "stale_digest"
    fresh = client.get(f"/api/reviews/{shown['id']}/").json()
    assert fresh["digest"] != shown["digest"]
    assert fresh["diff"]["from"] == 1
    ok = client.post(
        f"/api/reviews/{shown['id']}/decide/", {"decision": "approve", "digest": fresh["digest"]}, format="json"
    )
    assert ok.status_code == 200


def test_unknown_two_approver_kinds_fail_the_system_check(settings) -> None:
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.GOVERNANCE_TWO_APPROVER_KINDS = ["guardrail_policy", "guardrail_polcy"]
    with pytest.raises(SystemCheckError, match="guardrail_polcy"):
        call_command("check")
