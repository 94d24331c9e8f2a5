"""Sign-in throttling (django-axes, ``config/signin.py``): a password-guessing attack on the API's token endpoint
and on the console's login, each failure and lockout in the audit trail without the password, the right password
refused while locked and accepted once the lock has expired (time is moved by moving the recorded attempts back:
nothing here depends on the clock), and the lock kept to one username and address."""

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.db.models import F
from django.test import Client
from rest_framework.test import APIClient

from audit.models import AuditEvent
from config.settings import env_lockout_parameters

PASSWORD = "correct horse battery"  # the cast's (tests/conftest.py)
GUESSES = ["123456", "password", "letmein", "qwerty", "hunter2"]
TOKEN_URL = "/api/auth/token/"
LOGIN_URL = "/admin/login/?next=/admin/"


@pytest.fixture
def target(make_user: Callable[..., User]) -> User:
    return make_user("tess-target")


def past_the_lock() -> None:
    """Move the recorded attempts back past the lockout (15 minutes by default): as if the time had passed."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - dt.timedelta(minutes=16))


def trail(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("sequence"))


def assert_no_password_in_the_trail() -> None:
    recorded = " ".join(str(event.details) for event in AuditEvent.objects.all())
    for secret in [PASSWORD, *GUESSES]:
        assert secret not in recorded


# --- the API's token endpoint ----------------------------------------------------------------------------------


def ask_token(api: APIClient, username: str, password: str, **extra: Any) -> Any:
    return api.post(TOKEN_URL, {"username": username, "password": password}, format="json", **extra)


def test_guessing_at_the_token_endpoint_locks_the_username_and_address_out(api: APIClient, target: User) -> None:
    answers = [ask_token(api, target.username, guess) for guess in GUESSES]

    assert [answer.status_code for answer in answers] == [400, 400, 400, 400, 429]
    assert answers[0].json()["error"]["code"] == "invalid"
    locked = answers[-1]
    assert locked["Retry-After"] == "900"
    error = locked.json()["error"]
    assert error["code"] == "throttled"
    assert error["message"].startswith("Too many failed sign-ins for this username from this address")
    assert error["fields"] == {}

    right_while_locked = ask_token(api, target.username, PASSWORD)
    assert right_while_locked.status_code == 429
    assert right_while_locked["Retry-After"] == "900"
    assert "token" not in right_while_locked.json()

    past_the_lock()
    allowed = ask_token(api, target.username, PASSWORD)
    assert allowed.status_code == 200, allowed.json()
    assert allowed.json()["token"]


def test_each_failed_attempt_and_each_lockout_is_audited_without_the_password(api: APIClient, target: User) -> None:
    for guess in GUESSES:
        ask_token(api, target.username, guess)
    ask_token(api, target.username, PASSWORD)  # refused: locked

    failed = trail("auth.login_failed")
    assert len(failed) == 6
    assert {(event.details["username"], event.details["ip"]) for event in failed} == {(target.username, "127.0.0.1")}
    first, again = trail("auth.locked_out")
    assert first.actor_type == "system"
    assert first.actor_label == "sign-in throttle"
    assert first.target_label == target.username
    assert first.details == {"username": target.username, "ip": "127.0.0.1", "failures": 5, "locked_for_seconds": 900}
    assert again.details["failures"] == 6  # the attempt while locked started the wait again
    assert not trail("auth.token.issued")
    assert_no_password_in_the_trail()


def test_the_lock_holds_one_username_from_one_address(api: APIClient, target: User, viewer: User) -> None:
    for guess in GUESSES:
        ask_token(api, target.username, guess)
    assert ask_token(api, target.username, PASSWORD).status_code == 429

    assert ask_token(api, target.username, PASSWORD, REMOTE_ADDR="192.0.2.7").status_code == 200
    assert ask_token(api, viewer.username, PASSWORD).status_code == 200


def test_the_limit_and_the_lockout_come_from_the_settings(api: APIClient, target: User, settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = dt.timedelta(minutes=1)
    answers = [ask_token(api, target.username, guess).status_code for guess in GUESSES[:2]]
    assert answers == [400, 429]
    locked = ask_token(api, target.username, PASSWORD)
    assert locked.status_code == 429
    assert locked["Retry-After"] == "60"
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - dt.timedelta(seconds=61))
    assert ask_token(api, target.username, PASSWORD).status_code == 200


# --- the console's login ---------------------------------------------------------------------------------------


def sign_in(client: Client, username: str, password: str, **extra: Any) -> Any:
    return client.post(LOGIN_URL, {"username": username, "password": password}, **extra)


def test_guessing_at_the_console_login_locks_out_with_a_clear_page(client: Client, admin: User) -> None:
    answers = [sign_in(client, admin.username, guess) for guess in GUESSES]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 200, 429]
    assert b"Please enter the correct username and password" in answers[0].content
    locked = answers[-1]
    assert locked["Retry-After"] == "900"
    page = locked.content.decode()
    assert "Too many failed sign-ins for this username from this address" in page
    assert "locked for 15 minute(s)" in page
    assert admin.username in page

    right_while_locked = sign_in(client, admin.username, PASSWORD)
    assert right_while_locked.status_code == 429
    assert "_auth_user_id" not in client.session

    past_the_lock()
    allowed = sign_in(client, admin.username, PASSWORD)
    assert allowed.status_code == 302
    assert allowed["Location"] == "/admin/"
    assert client.session["_auth_user_id"] == str(admin.pk)
    assert client.get("/admin/").status_code == 200


def test_console_failures_and_lockouts_are_audited_without_the_password(client: Client, admin: User) -> None:
    for guess in GUESSES:
        sign_in(client, admin.username, guess)
    sign_in(client, admin.username, PASSWORD)

    assert len(trail("auth.login_failed")) == 6
    assert [event.details["failures"] for event in trail("auth.locked_out")] == [5, 6]
    assert not trail("auth.login")
    past_the_lock()
    sign_in(client, admin.username, PASSWORD)
    assert [event.actor_label for event in trail("auth.login")] == [admin.username]
    assert_no_password_in_the_trail()


def test_a_locked_console_username_may_still_sign_in_from_another_address(client: Client, admin: User) -> None:
    for guess in GUESSES:
        sign_in(client, admin.username, guess)
    assert sign_in(client, admin.username, PASSWORD, REMOTE_ADDR="192.0.2.7").status_code == 302


def test_a_few_mistakes_and_the_right_password_sign_in_as_usual(client: Client, admin: User) -> None:
    for guess in GUESSES[:4]:
        assert sign_in(client, admin.username, guess).status_code == 200
    assert sign_in(client, admin.username, PASSWORD).status_code == 302
    assert not trail("auth.locked_out")


# --- settings ----------------------------------------------------------------------------------------------------


def test_what_is_counted_together_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env_lockout_parameters("SIGNIN_TEST_BY", "username+ip_address") == [["username", "ip_address"]]
    monkeypatch.setenv("SIGNIN_TEST_BY", "ip_address, username+user_agent")
    assert env_lockout_parameters("SIGNIN_TEST_BY", "username") == ["ip_address", ["username", "user_agent"]]
    monkeypatch.setenv("SIGNIN_TEST_BY", "username+password")
    with pytest.raises(Exception, match=r"SIGNIN_TEST_BY='username\+password': use username, ip_address"):
        env_lockout_parameters("SIGNIN_TEST_BY", "username")
