"""Roles and API tokens: who is in which role, synced from the patterns of ``governance.roles``."""

from fnmatch import fnmatchcase

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.management import create_contenttypes
from django.db import transaction
from rest_framework.authtoken.models import Token

from audit.context import Actor, audit_context
from audit.services import audit_record
from config.errors import DomainError
from governance.roles import CONSOLE_ROLES, ROLE_PERMISSIONS, Role


def role_permission_names(role: Role, available: list[str]) -> set[str]:
    """The ``app_label.codename`` permissions that ``role``'s patterns select from ``available``."""
    granted: set[str] = set()
    for pattern in ROLE_PERMISSIONS[role]:
        if pattern.startswith("-"):
            granted -= {name for name in granted if fnmatchcase(name, pattern[1:])}
        else:
            granted |= {name for name in available if fnmatchcase(name, pattern)}
    return granted


def roles_sync(*, using: str = "default") -> None:
    """Create the role groups if missing and give each exactly the permissions its patterns select.

    Runs after every ``migrate``. Changes are audited through the permission-change signal, as the
    system actor ``roles_sync``; a sync that changes nothing records nothing.
    """
    for app_config in apps.get_app_configs():
        create_contenttypes(app_config, verbosity=0, using=using)
        create_permissions(app_config, verbosity=0, using=using)
    permissions = {
        f"{permission.content_type.app_label}.{permission.codename}": permission
        for permission in Permission.objects.using(using).select_related("content_type")
    }
    with audit_context(actor=Actor.system("roles_sync")), transaction.atomic(using=using):
        for role in Role:
            group, _ = Group.objects.using(using).get_or_create(name=role.value)
            wanted = {permissions[name].pk for name in role_permission_names(role, list(permissions))}
            current = set(group.permissions.values_list("pk", flat=True))
            if current - wanted:
                group.permissions.remove(*(current - wanted))
            if wanted - current:
                group.permissions.add(*(wanted - current))


def _role(name: str) -> Role:
    try:
        return Role(name)
    except ValueError:
        choices = ", ".join(role.value for role in Role)
        raise DomainError(f"Unknown role {name!r}.", fields={"role": [f"Choose one of: {choices}."]}) from None


@transaction.atomic
def user_role_assign(*, actor: Actor, user: User, role: str) -> None:
    """Give ``user`` a role. A console role lets them sign in to the console; the Client role does not (an
    application's API user).

    Recorded as ``auth.user.roles_changed`` by the membership signal, attributed to ``actor``.
    """
    chosen = _role(role)
    group = Group.objects.get(name=chosen.value)
    with audit_context(actor=actor):
        user.groups.add(group)
    if chosen in CONSOLE_ROLES and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])


@transaction.atomic
def user_role_revoke(*, actor: Actor, user: User, role: str) -> None:
    """Take a role from ``user``. Recorded as ``auth.user.roles_changed``."""
    group = Group.objects.get(name=_role(role).value)
    with audit_context(actor=actor):
        user.groups.remove(group)


@transaction.atomic
def api_token_issue(*, user: User, ip: str) -> Token:
    """Hand ``user`` their API token after a password check; recorded as ``auth.token.issued``."""
    token, created = Token.objects.get_or_create(user=user)
    audit_record(
        actor=Actor.for_user(user), action="auth.token.issued", target=user, details={"ip": ip, "new": created}
    )
    return token
