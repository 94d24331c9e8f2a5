"""Four-eyes that cannot be walked around: whoever wrote any part of a version may not approve or release it,
even when someone else submitted it (ghost-writing)."""

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from audit.context import Actor
from governance.models import GovernedObject, ReviewItem, Version, VersionStatus
from governance.roles import Role
from governance.services import user_role_assign
from tests.governance.test_lifecycle import GUIDE, approve, release

pytestmark = pytest.mark.django_db


@pytest.fixture
def ghost(make_user: Callable[..., User]) -> User:
    """An Editor who is an Approver too: the one who would like to approve their own words."""
    user = make_user("gus-ghost", Role.EDITOR)
    user_role_assign(actor=Actor.system("tests"), user=user, role=Role.APPROVER)
    return user


def ghost_written(api_as: Callable[[User], APIClient], ghost: User, editor: User) -> dict:
    """The ghost writes the draft; another Editor, who changed nothing, submits it."""
    created = api_as(ghost).post(
        "/api/style-guides/", {"slug": "brand", "name": "Brand voice", "draft": GUIDE}, format="json"
    )
    assert created.status_code == 201, created.json()
    submitted = api_as(editor).post("/api/style-guides/brand/submit/", {"note": "on behalf"}, format="json")
    assert submitted.status_code == 201, submitted.json()
    return submitted.json()


def test_the_ghost_writer_cannot_approve_what_someone_else_submitted(api_as, ghost: User, editor: User) -> None:
    ghost_written(api_as, ghost, editor)

    refused = approve(api_as(ghost), 1)

    assert refused.status_code == 403, refused.json()
    assert refused.json()["error"]["code"] == "self_review"
    assert Version.objects.get(number=1).status == VersionStatus.PENDING


def test_an_editor_of_the_draft_cannot_approve_it(api_as, ghost: User, editor: User) -> None:
    """The ghost only edits a draft someone else created; the other Editor submits."""
    as_editor = api_as(editor)
    as_editor.post("/api/style-guides/", {"slug": "brand", "name": "Brand voice", "draft": GUIDE}, format="json")
    edited = api_as(ghost).patch(
        "/api/style-guides/brand/", {"draft": {**GUIDE, "max_sentence_words": 40}}, format="json"
    )
    assert edited.status_code == 200, edited.json()
    assert as_editor.post("/api/style-guides/brand/submit/", {}, format="json").status_code == 201

    assert approve(api_as(ghost), 1).status_code == 403
    assert set(Version.objects.get(number=1).authors.values_list("username", flat=True)) == {
        ghost.username,
        editor.username,
    }


def test_words_of_a_rejected_version_stay_the_ghosts(api_as, ghost: User, editor: User, approver: User) -> None:
    """A rejected version's draft, changed by someone else and submitted again, still holds the ghost's words."""
    ghost_written(api_as, ghost, editor)
    version = api_as(approver).get("/api/style-guides/brand/versions/1/").json()
    rejected = api_as(approver).post(
        "/api/style-guides/brand/versions/1/reject/",
        {"digest": version["review"]["digest"], "comment": "not yet"},
        format="json",
    )
    assert rejected.status_code == 200, rejected.json()
    api_as(editor).patch("/api/style-guides/brand/", {"draft": {**GUIDE, "max_sentence_words": 30}}, format="json")
    assert api_as(editor).post("/api/style-guides/brand/submit/", {}, format="json").status_code == 201

    assert approve(api_as(ghost), 2).status_code == 403


def test_someone_who_wrote_nothing_approves_and_authorship_starts_again(
    api_as, ghost: User, editor: User, approver: User
) -> None:
    ghost_written(api_as, ghost, editor)
    assert approve(api_as(approver), 1).status_code == 200
    assert not GovernedObject.objects.get(slug="brand").draft_authors.exists()

    # Once approved, the ghost reviews the next change, written by someone else.
    api_as(editor).patch("/api/style-guides/brand/", {"draft": {**GUIDE, "max_sentence_words": 30}}, format="json")
    assert api_as(editor).post("/api/style-guides/brand/submit/", {}, format="json").status_code == 201
    assert approve(api_as(ghost), 2).status_code == 200


def test_the_ghost_writer_cannot_release_it(api_as, ghost: User, editor: User, approver: User) -> None:
    ghost_written(api_as, ghost, editor)
    assert approve(api_as(approver), 1).status_code == 200

    refused = release(api_as(ghost), 1, "mine, reviewed by someone else")

    assert refused.status_code == 403, refused.json()
    assert refused.json()["error"]["code"] == "own_work"
    assert release(api_as(approver), 1, "reviewed and released by others").status_code == 201


def test_the_console_offers_the_ghost_no_decision(client, api_as, ghost: User, editor: User) -> None:
    ghost_written(api_as, ghost, editor)
    client.force_login(ghost)
    item = ReviewItem.objects.get()
    page = client.get(f"/admin/governance/reviewitem/{item.pk}/change/")

    assert page.status_code == 200
    assert 'name="_approve"' not in page.content.decode()
