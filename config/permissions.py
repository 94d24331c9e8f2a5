"""DRF permissions that ask Django's permission system, so roles (groups) govern API clients too."""

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


def has_perms(*perms: str) -> type[BasePermission]:
    """A permission class granting access to authenticated users holding every one of ``perms``."""

    class HasPerms(BasePermission):
        message = f"This needs the permission(s): {', '.join(perms)}."

        def has_permission(self, request: Request, view: Any) -> bool:
            user = request.user
            return bool(user and user.is_authenticated and user.has_perms(perms))

    HasPerms.__name__ = f"HasPerms({', '.join(perms)})"
    return HasPerms
