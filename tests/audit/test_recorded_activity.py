"""Logins, logouts, failed logins, role and permission changes and admin changes land in the trail."""

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from governance.roles import Role

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery"


def latest(action: str) -> AuditEvent:
    event = AuditEvent.objects.filter(action=action).order_by("-sequence").first()
    assert event is not None, f"no {action} event"
    return event


def test_console_login_and_logout_are_recorded(client: Client, viewer: User) -> None:
    response = client.post(reverse("admin:login"), {"username": viewer.username, "password": PASSWORD})
    assert response.status_code == 302
    login = latest("auth.login")
    assert (login.actor_type, login.actor_label, login.target_id) == ("user", viewer.username, str(viewer.pk))
    assert login.details["ip"] == "127.0.0.1"
    client.post(reverse("admin:logout"))
    assert latest("auth.logout").actor_label == viewer.username


def test_failed_login_is_recorded_without_the_password(client: Client, viewer: User) -> None:
    response = client.post(reverse("admin:login"), {"username": viewer.username, "password": "wrong guess"})
    assert response.status_code == 200
    failed = latest("auth.login_failed")
    assert failed.actor_type == "anonymous"
    assert failed.details == {"username": viewer.username, "ip": "127.0.0.1"}
    assert "wrong guess" not in str(failed.details) + failed.actor_label


def test_failed_api_token_request_is_recorded(api, viewer: User) -> None:
    response = api.post("/api/auth/token/", {"username": viewer.username, "password": "nope"}, format="json")
    assert response.status_code == 400
    assert latest("auth.login_failed").details["username"] == viewer.username


def test_role_change_in_the_console_is_recorded_with_who_did_it(client: Client, admin: User, viewer: User) -> None:
    client.force_login(admin)
    auditor_group = Group.objects.get(name=Role.AUDITOR)
    response = client.post(
        reverse("admin:auth_user_change", args=[viewer.pk]),
        {
            "username": viewer.username,
            "is_active": "on",
            "is_staff": "on",
            "groups": [Group.objects.get(name=Role.VIEWER).pk, auditor_group.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    roles = latest("auth.user.roles_changed")
    assert (roles.actor_label, roles.target_label) == (admin.username, viewer.username)
    assert roles.details == {"change": "added", "groups": ["Auditor"]}
    change = latest("admin.object.changed")
    assert (change.actor_label, change.target_type, change.target_id) == (admin.username, "auth.user", str(viewer.pk))
    assert roles.correlation_id == change.correlation_id


def test_clearing_roles_records_what_was_removed(make_user: Callable[..., User]) -> None:
    user = make_user("two-roles", Role.VIEWER)
    user.groups.add(Group.objects.get(name=Role.OPERATOR))
    user.groups.clear()
    event = latest("auth.user.roles_changed")
    assert event.details == {"change": "removed", "groups": ["Operator", "Viewer"]}


def test_permission_changes_are_recorded(make_user: Callable[..., User]) -> None:
    user = make_user("direct-perms")
    permission = Permission.objects.get(codename="view_auditevent")
    user.user_permissions.add(permission)
    assert latest("auth.user.permissions_changed").details == {
        "change": "added",
        "permissions": ["audit.view_auditevent"],
    }
    group = Group.objects.get(name=Role.VIEWER)
    group.permissions.add(permission)
    event = latest("auth.group.permissions_changed")
    assert (event.target_label, event.details["permissions"]) == ("Viewer", ["audit.view_auditevent"])


def test_admin_additions_and_deletions_are_recorded(client: Client, admin: User) -> None:
    client.force_login(admin)
    response = client.post(reverse("admin:auth_group_add"), {"name": "Night shift"})
    assert response.status_code == 302
    group = Group.objects.get(name="Night shift")
    added = latest("admin.object.added")
    assert (added.actor_label, added.target_type, added.target_label) == (admin.username, "auth.group", "Night shift")
    response = client.post(reverse("admin:auth_group_delete", args=[group.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert latest("admin.object.deleted").target_id == str(group.pk)
