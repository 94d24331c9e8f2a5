"""The six roles exist with the permissions DESIGN.md gives them, and are assigned by a command."""

import io

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from governance.roles import Role
from governance.services import role_permission_names, roles_sync

pytestmark = pytest.mark.django_db


def permissions_of(role: Role) -> set[str]:
    group = Group.objects.get(name=role)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def test_the_six_roles_exist() -> None:
    assert set(Group.objects.values_list("name", flat=True)) >= {role.value for role in Role}


def test_only_auditors_and_admins_read_and_verify_the_trail() -> None:
    trail = {"audit.view_auditevent", "audit.verify_auditevent", "audit.export_auditevent"}
    for role in Role:
        granted = permissions_of(role) & trail
        assert granted == (trail if role in {Role.AUDITOR, Role.ADMIN} else set()), role


def test_admin_has_every_permission_including_users_and_roles() -> None:
    admin = permissions_of(Role.ADMIN)
    assert {"auth.change_user", "auth.add_group", "authtoken.add_token"} <= admin
    for role in (Role.VIEWER, Role.AUDITOR, Role.EDITOR, Role.APPROVER, Role.OPERATOR):
        assert not any(name.startswith("auth.") for name in permissions_of(role)), role


def test_patterns_grant_and_withhold() -> None:
    available = [
        "agents.view_run",
        "agents.add_agentdefinition",
        "agents.add_tool",
        "agents.change_tool",
        "agents.view_tool",
        "agents.submit_agentversion",
        "agents.decide_approval",
        "agents.start_run",
        "audit.view_auditevent",
    ]
    assert role_permission_names(Role.VIEWER, available) == {"agents.view_run", "agents.view_tool"}
    assert role_permission_names(Role.EDITOR, available) == {  # tools are configured by Admins only
        "agents.view_run",
        "agents.view_tool",
        "agents.add_agentdefinition",
        "agents.submit_agentversion",
    }
    assert role_permission_names(Role.APPROVER, available) == {
        "agents.view_run",
        "agents.view_tool",
        "agents.decide_approval",
    }
    assert role_permission_names(Role.OPERATOR, available) == {
        "agents.view_run",
        "agents.view_tool",
        "agents.start_run",
    }
    assert role_permission_names(Role.ADMIN, available) == set(available)


def test_sync_is_idempotent_and_records_nothing_when_nothing_changes() -> None:
    before = AuditEvent.objects.count()
    roles_sync()
    assert AuditEvent.objects.count() == before


def test_sync_restores_a_removed_permission_and_records_it() -> None:
    group = Group.objects.get(name=Role.AUDITOR)
    group.permissions.remove(*group.permissions.filter(codename="verify_auditevent"))
    roles_sync()
    assert "audit.verify_auditevent" in permissions_of(Role.AUDITOR)
    event = AuditEvent.objects.filter(action="auth.group.permissions_changed").order_by("-sequence").first()
    assert event is not None
    assert (event.actor_label, event.details) == (
        "roles_sync",
        {"change": "added", "permissions": ["audit.verify_auditevent"]},
    )


def test_assign_role_command(outsider: User) -> None:
    out = io.StringIO()
    call_command("assign_role", outsider.username, "Auditor", stdout=out)
    outsider.refresh_from_db()
    assert outsider.is_staff
    assert outsider.has_perm("audit.verify_auditevent")
    assert "now has the role Auditor" in out.getvalue()
    event = AuditEvent.objects.filter(action="auth.user.roles_changed").order_by("-sequence").first()
    assert event is not None
    assert (event.actor_label.startswith("cli:"), event.target_label, event.details) == (
        True,
        outsider.username,
        {"change": "added", "groups": ["Auditor"]},
    )
    call_command("assign_role", outsider.username, "Auditor", "--revoke", stdout=out)
    outsider = User.objects.get(pk=outsider.pk)
    assert not outsider.has_perm("audit.verify_auditevent")


def test_assign_role_refuses_unknown_users_and_roles(outsider: User) -> None:
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("assign_role", "nobody", "Viewer")
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("assign_role", outsider.username, "Overlord")


def test_an_operator_rolls_back_but_does_not_release(editor: User, approver: User, operator: User) -> None:
    from config.errors import NotAllowed
    from governance import services
    from governance.models import LabelPointer

    obj = services.governed_object_create(actor=editor, kind="style_guide", slug="g", name="G", draft={})
    versions = []
    for spec in ({}, {"max_sentence_words": 20}):
        services.draft_update(actor=editor, obj=obj, draft=spec)
        version = services.version_submit(actor=editor, obj=obj)
        item = version.reviews.get()
        services.review_decide(actor=approver, item=item, decision="approve", digest=item.digest)
        versions.append(version)
    with pytest.raises(NotAllowed):
        services.release_create(actor=operator, note="no", moves=[services.Move(obj, "production", versions[0])])
    services.release_create(actor=approver, note="v1", moves=[services.Move(obj, "production", versions[0])])
    latest = services.release_create(actor=approver, note="v2", moves=[services.Move(obj, "production", versions[1])])
    services.release_rollback(actor=operator, release=latest, reason="v2 broke the persona")
    assert LabelPointer.objects.get(object=obj, label__name="production").version == versions[0]
