"""Audit records for what Django itself does: logins, logouts, failed logins, role and permission
changes (whoever makes them: admin, API, shell), and every change made in the admin console."""

from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import models
from django.db.models.signals import m2m_changed, post_save

from audit.context import Actor, current_actor
from audit.services import Target, audit_record

ADMIN_ACTIONS = {ADDITION: "admin.object.added", CHANGE: "admin.object.changed", DELETION: "admin.object.deleted"}


def _client_ip(request: Any) -> str:
    return getattr(request, "META", {}).get("REMOTE_ADDR", "") if request is not None else ""


def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(actor=Actor.for_user(user), action="auth.login", target=user, details={"ip": _client_ip(request)})


def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is None:
        return
    audit_record(actor=Actor.for_user(user), action="auth.logout", target=user, details={"ip": _client_ip(request)})


def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    username = str(credentials.get("username", ""))
    audit_record(
        actor=Actor(type="anonymous", id="", label=f"login attempt as {username!r}"[:200]),
        action="auth.login_failed",
        target=Target(type="auth.user", label=username[:200]),
        details={"username": username, "ip": _client_ip(request)},
    )


def _label(obj: Any) -> str:
    if isinstance(obj, Permission):
        return f"{obj.content_type.app_label}.{obj.codename}"
    return str(obj)


def _names(model: type[models.Model], pks: Any) -> list[str]:
    manager = model._default_manager
    if model is Permission:
        manager = Permission.objects.select_related("content_type")  # type: ignore[assignment]
    return sorted(_label(obj) for obj in manager.filter(pk__in=list(pks)))


def _linked_pks(through: type[models.Model], instance: models.Model, model: type[models.Model]) -> list[Any]:
    """The primary keys of ``model`` rows that ``instance`` is linked to through ``through``."""
    own = next(f for f in through._meta.fields if f.related_model is instance._meta.concrete_model)
    other = next(f for f in through._meta.fields if f.related_model is model)
    return list(through._default_manager.filter(**{own.name: instance.pk}).values_list(other.attname, flat=True))


def _membership_changed(action_name: str) -> Any:
    """An m2m_changed receiver recording what was added, removed or cleared under ``action_name``."""

    def receiver(
        sender: Any, instance: models.Model, action: str, model: type[models.Model], pk_set: Any, **kwargs: Any
    ) -> None:
        if action == "pre_clear":
            # A clear does not say what it removes: read it while it is still there.
            instance._audit_cleared = _names(model, _linked_pks(sender, instance, model))  # type: ignore[attr-defined]
            return
        if action == "post_clear":
            names, change = getattr(instance, "_audit_cleared", []), "removed"
        elif action in {"post_add", "post_remove"}:
            names, change = _names(model, pk_set or []), "added" if action == "post_add" else "removed"
        else:
            return
        if names:
            audit_record(
                actor=current_actor() or Actor.system("steward"),
                action=action_name,
                target=instance,
                details={"change": change, str(model._meta.verbose_name_plural): names},
            )

    return receiver


def _admin_logged(sender: Any, instance: LogEntry, created: bool, **kwargs: Any) -> None:
    if not created:
        return
    content_type = instance.content_type
    audit_record(
        actor=Actor.for_user(instance.user),
        action=ADMIN_ACTIONS.get(instance.action_flag, "admin.object.changed"),
        target=Target(
            type=f"{content_type.app_label}.{content_type.model}" if content_type else "",
            id=str(instance.object_id or ""),
            label=instance.object_repr,
        ),
        details={"change": instance.get_change_message()},
    )


_RECEIVERS: list[Any] = []


def connect() -> None:
    user_model = get_user_model()
    user_logged_in.connect(_logged_in, dispatch_uid="audit.login")
    user_logged_out.connect(_logged_out, dispatch_uid="audit.logout")
    user_login_failed.connect(_login_failed, dispatch_uid="audit.login_failed")
    post_save.connect(_admin_logged, sender=LogEntry, dispatch_uid="audit.admin_log")
    for through, action in (
        (user_model.groups.through, "auth.user.roles_changed"),
        (user_model.user_permissions.through, "auth.user.permissions_changed"),
        (Group.permissions.through, "auth.group.permissions_changed"),
    ):
        receiver = _membership_changed(action)
        _RECEIVERS.append(receiver)  # signals hold weak references; keep the closures alive
        m2m_changed.connect(receiver, sender=through, dispatch_uid=f"audit.{action}")
