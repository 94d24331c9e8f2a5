"""Sign-in throttling, by django-axes: the console's login and the API's token endpoint count failed sign-ins per
username and client address (``SIGNIN_*`` in ``config/settings.py``); past the limit that pair is locked out for a
while. The console answers a locked sign-in with a page saying so, the API with a 429 in its one error shape;
both with ``Retry-After``. The lockouts reach the audit trail through ``governance.receivers``.
"""

from datetime import timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_client_username, get_cool_off
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.exceptions import Throttled


class SignInThrottleBackend(AxesStandaloneBackend):
    """Refuses every sign-in of a locked-out username and address before any password is checked (first of
    ``AUTHENTICATION_BACKENDS``). A sign-in without a request has no client to throttle and is left to the next
    backend: the shell, and the test client's ``login()``; every sign-in over HTTP has one."""

    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def lockout_seconds(request: Any) -> int:
    """How long the lockout lasts from now: each attempt while locked starts it again."""
    cool_off = get_cool_off(request) or timedelta(0)
    return int(cool_off.total_seconds())


def refuse_if_locked(request: Any) -> None:
    """After a failed sign-in at the API: ``Throttled`` (429, ``Retry-After``) when that made or found the
    username and address locked out, so that the client is told to wait rather than that its password is wrong."""
    if getattr(request, "axes_locked_out", False):
        seconds = lockout_seconds(request)
        raise Throttled(wait=seconds, detail=_message(seconds))


def lockout_response(request: HttpRequest, original_response: Any = None, credentials: Any = None) -> HttpResponse:
    """The console's answer to a locked-out sign-in (``AXES_LOCKOUT_CALLABLE``): a page saying so, 429."""
    seconds = lockout_seconds(request)
    context = {
        **admin.site.each_context(request),
        "title": "Sign-in locked",
        "username": get_client_username(request, credentials) or "",
        "message": _message(seconds),
    }
    response = render(request, "admin/locked_out.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response


def _message(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return (
        f"Too many failed sign-ins for this username from this address: signing in is locked for {minutes} "
        "minute(s). Each attempt while it is locked starts the wait again."
    )
