"""Governed configuration in the console: the same services, the same refusals, said clearly."""

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from audit.context import Actor
from audit.models import AuditEvent
from governance import services
from governance.models import GovernedObject, ReviewItem, ReviewStatus, Version, VersionStatus
from governance.roles import Role
from personas.models import StyleGuide

pytestmark = pytest.mark.django_db
SPEC = {"banned": [{"phrase": "cheap"}], "examples": [{"text": "A fair price.", "compliant": True}]}


@pytest.fixture
def guide(editor: User) -> GovernedObject:
    return services.governed_object_create(actor=editor, kind="style_guide", slug="brand", name="Brand", draft=SPEC)


def test_editor_creates_edits_and_submits_in_the_console(client: Client, editor: User) -> None:
    client.force_login(editor)
    response = client.post(
        reverse("admin:personas_styleguide_add"), {"slug": "brand", "name": "Brand", "draft": json.dumps(SPEC)}
    )
    assert response.status_code == 302, response.content[:3000]
    guide = StyleGuide.objects.get(slug="brand")
    assert guide.draft == SPEC
    assert AuditEvent.objects.filter(action="governance.style_guide.created", actor_label=editor.username).exists()

    page = client.get(reverse("admin:personas_styleguide_change", args=[guide.pk]))
    assert b"Submit for review" in page.content
    assert b"Roll back a label" not in page.content
    response = client.post(
        reverse("admin:personas_styleguide_submit", args=[guide.pk]), {"note": "v1", "label": "production"}
    )
    version = Version.objects.get(object=guide)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:governance_version_change", args=[version.pk])
    assert version.status == VersionStatus.PENDING


def test_a_draft_that_is_not_an_object_is_refused_with_a_field_error(client: Client, editor: User) -> None:
    client.force_login(editor)
    response = client.post(
        reverse("admin:personas_styleguide_add"), {"slug": "brand", "name": "Brand", "draft": "[1, 2]"}
    )
    assert response.status_code == 200
    assert b"The draft must be a JSON object." in response.content
    assert not GovernedObject.objects.exists()


def test_an_invalid_draft_is_explained_on_submit(client: Client, editor: User) -> None:
    guide = services.governed_object_create(
        actor=editor, kind="style_guide", slug="brand", name="Brand", draft={"max_sentence_words": 1}
    )
    client.force_login(editor)
    response = client.post(
        reverse("admin:personas_styleguide_submit", args=[guide.pk]), {"label": "production"}, follow=True
    )
    assert b"draft.max_sentence_words" in response.content
    assert not Version.objects.exists()


def test_approver_decides_from_the_review_page(
    client: Client, guide: GovernedObject, editor: User, approver: User
) -> None:
    version = services.version_submit(actor=editor, obj=guide)
    item = ReviewItem.objects.get(version=version)
    client.force_login(approver)
    page = client.get(reverse("admin:governance_reviewitem_change", args=[item.pk]))
    assert page.status_code == 200
    assert b"Approve" in page.content
    assert b"nothing released yet" in page.content
    assert b"style_guide.examples" in page.content
    response = client.post(
        reverse("admin:governance_reviewitem_change", args=[item.pk]),
        {"digest": item.digest, "comment": "good", "_approve": "1"},
        follow=True,
    )
    assert b"You approved" in response.content
    version.refresh_from_db()
    assert version.status == VersionStatus.APPROVED


def test_self_review_is_refused_in_the_console_too(client: Client, guide: GovernedObject, editor: User) -> None:
    services.user_role_assign(actor=Actor.system("tests"), user=editor, role=Role.APPROVER)
    version = services.version_submit(actor=editor, obj=guide)
    item = ReviewItem.objects.get(version=version)
    client.force_login(editor)
    page = client.get(reverse("admin:governance_reviewitem_change", args=[item.pk]))
    assert b"You made this request: someone else has to decide it." in page.content
    assert b'name="_approve"' not in page.content
    response = client.post(
        reverse("admin:governance_reviewitem_change", args=[item.pk]),
        {"digest": item.digest, "_approve": "1"},
        follow=True,
    )
    assert b"You cannot review your own request" in response.content
    item.refresh_from_db()
    assert item.status == ReviewStatus.PENDING


def test_viewer_sees_no_buttons_and_forced_actions_are_refused(
    client: Client, guide: GovernedObject, viewer: User, editor: User
) -> None:
    version = services.version_submit(actor=editor, obj=guide)
    client.force_login(viewer)
    page = client.get(reverse("admin:personas_styleguide_change", args=[guide.pk]))
    assert page.status_code == 200
    assert b"Submit for review" not in page.content
    assert (
        client.post(reverse("admin:personas_styleguide_submit", args=[guide.pk]), {"label": "production"}).status_code
        == 403
    )
    item = ReviewItem.objects.get(version=version)
    page = client.get(reverse("admin:governance_reviewitem_change", args=[item.pk]))
    assert b'name="_approve"' not in page.content
    response = client.post(
        reverse("admin:governance_reviewitem_change", args=[item.pk]),
        {"digest": item.digest, "_approve": "1"},
        follow=True,
    )
    assert b"You may not decide reviews" in response.content
    item.refresh_from_db()
    assert item.status == ReviewStatus.PENDING


def test_release_rollback_from_the_console(
    client: Client, guide: GovernedObject, editor: User, approver: User, make_user
) -> None:
    second = make_user("second-approver", Role.APPROVER)
    version = services.version_submit(actor=editor, obj=guide)
    item = ReviewItem.objects.get(version=version)
    services.review_decide(actor=approver, item=item, decision="approve", digest=item.digest)
    release = services.release_create(
        actor=approver, note="launch", moves=[services.Move(object=guide, label="production", version=version)]
    )
    client.force_login(second)
    page = client.get(reverse("admin:governance_release_change", args=[release.pk]))
    assert b"Roll back this release" in page.content
    response = client.post(reverse("admin:governance_release_rollback", args=[release.pk]), {"reason": "wrong tone"})
    assert response.status_code == 302
    release.refresh_from_db()
    assert release.rolled_back_at is not None
    assert not guide.pointers.exists()
    event = AuditEvent.objects.get(action="governance.release.rolled_back")
    assert (event.actor_label, event.details["reason"]) == (second.username, "wrong tone")


def test_an_approved_version_is_released_from_its_page(
    client: Client, guide: GovernedObject, editor: User, approver: User
) -> None:
    version = services.version_submit(actor=editor, obj=guide)
    item = ReviewItem.objects.get(version=version)
    client.force_login(approver)
    assert (
        b"Release this version" not in client.get(reverse("admin:governance_version_change", args=[version.pk])).content
    )
    services.review_decide(actor=approver, item=item, decision="approve", digest=item.digest)
    assert b"Release this version" in client.get(reverse("admin:governance_version_change", args=[version.pk])).content
    response = client.post(
        reverse("admin:governance_version_release", args=[version.pk]), {"label": "staging", "note": "try it"}
    )
    assert response.status_code == 302
    assert services.label_resolve(kind="style_guide", slug="brand", label="staging") == version
    client.force_login(editor)
    assert client.post(reverse("admin:governance_version_release", args=[version.pk]), {}).status_code == 403


def test_any_two_versions_are_compared_side_by_side(client: Client, editor: User) -> None:
    guide = services.governed_object_create(actor=editor, kind="style_guide", slug="cmp", name="Cmp", draft=SPEC)
    services.version_submit(actor=editor, obj=guide)
    changed = {**SPEC, "banned": [{"phrase": "cheap"}, {"phrase": "bargain"}], "max_sentence_words": 20}
    services.draft_update(actor=editor, obj=guide, draft=changed)
    services.version_submit(actor=editor, obj=guide)
    client.force_login(editor)
    url = reverse("admin:personas_styleguide_compare", args=[guide.pk])
    page = client.get(url, {"old": "1", "new": "2"}).content.decode()
    assert "<th>v1</th><th>v2</th>" in page
    assert "banned[1]" in page
    assert "bargain" in page
    assert "max_sentence_words" in page
    same = client.get(url, {"old": "2", "new": "2"}).content.decode()
    assert "v2 and v2 have the same spec." in same
    bad = client.get(url, {"old": "9", "new": "2"})
    assert bad.status_code == 200
    assert "Select a valid choice" in bad.content.decode()
