"""What the governance services share: the actor a user is in the audit trail, permission checks, a user's roles at
the time, spec checksums and labels by name."""

import hashlib
from typing import Any

from django.contrib.auth.models import User

from audit import integrity
from audit.context import Actor, current_actor
from config.errors import DomainError, NotAllowed
from governance.models import (
    Label,
)


def audit_actor(user: User) -> Actor:
    """``user`` as an audit actor, keeping the request's view of them (an API client uses a token)."""
    actor = current_actor()
    if actor is not None and actor.id == str(user.pk):
        return actor
    return Actor.for_user(user)


def require_permission(user: User, permission: str, doing: str) -> None:
    if not user.has_perm(permission):
        raise NotAllowed(f"You may not {doing}: it needs the permission {permission}.")


def user_roles(user: User) -> str:
    names = sorted(user.groups.values_list("name", flat=True))
    if user.is_superuser:
        names.insert(0, "superuser")
    return ", ".join(names) or "no role"


def spec_checksum(spec: dict[str, Any]) -> str:
    return hashlib.sha256(integrity.canonical_json(spec).encode()).hexdigest()


def label_by_name(name: str) -> Label:
    try:
        return Label.objects.get(name=name)
    except Label.DoesNotExist:
        known = ", ".join(Label.objects.values_list("name", flat=True))
        raise DomainError(f"There is no label {name!r}.", fields={"label": [f"Choose one of: {known}."]}) from None
