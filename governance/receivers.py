"""Signal receivers of governance, connected in ``GovernanceConfig.ready()``: sign-in lockouts (django-axes'
``user_locked_out``) go to the audit trail. Each failed sign-in is already recorded as ``auth.login_failed``
(``audit.signals``); the password never is."""

from typing import Any

from axes.signals import user_locked_out

from audit.context import Actor
from audit.services import Target, audit_record
from config.signin import lockout_seconds


def signin_locked_out(sender: Any, request: Any, username: str | None, ip_address: str | None, **kwargs: Any) -> None:
    """``auth.locked_out``: a username and address locked out, as the limit is reached and at each attempt while
    locked (each starts the wait again)."""
    name = str(username or "")
    audit_record(
        actor=Actor.system("sign-in throttle"),
        action="auth.locked_out",
        target=Target(type="auth.user", label=name[:200]),
        details={
            "username": name,
            "ip": ip_address or "",
            "failures": getattr(request, "axes_failures_since_start", None),
            "locked_for_seconds": lockout_seconds(request),
        },
    )


def connect() -> None:
    user_locked_out.connect(signin_locked_out, dispatch_uid="governance.signin_locked_out")
