"""The settings helpers fail loudly on bad values, and secrets are generated once into var/."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from config import celery_app
from config import settings as steward_settings


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("0", False), ("Yes", True), ("off", False), ("", True)])
def test_env_bool(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    monkeypatch.setenv("STEWARD_FLAG", raw)
    assert steward_settings.env_bool("STEWARD_FLAG", True) is expected


def test_env_bool_refuses_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEWARD_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="STEWARD_FLAG='maybe' is not a boolean"):
        steward_settings.env_bool("STEWARD_FLAG", False)


def test_env_int(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEWARD_N", "42")
    assert steward_settings.env_int("STEWARD_N", 1) == 42
    monkeypatch.setenv("STEWARD_N", "forty")
    with pytest.raises(ImproperlyConfigured, match="is not an integer"):
        steward_settings.env_int("STEWARD_N", 1)
    monkeypatch.setenv("STEWARD_N", "3")
    with pytest.raises(ImproperlyConfigured, match="below the minimum of 10"):
        steward_settings.env_int("STEWARD_N", 10, minimum=10)


def test_env_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEWARD_HOSTS", " a.example, b.example ,,")
    assert steward_settings.env_list("STEWARD_HOSTS", []) == ["a.example", "b.example"]


def test_secret_is_generated_once_and_private(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("STEWARD_TEST_SECRET", raising=False)
    monkeypatch.setattr(steward_settings, "VAR_DIR", tmp_path)
    first = steward_settings.var_secret("STEWARD_TEST_SECRET", "test-secret")
    assert len(first) >= 50
    assert steward_settings.var_secret("STEWARD_TEST_SECRET", "test-secret") == first
    assert (tmp_path / "test-secret").stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("STEWARD_TEST_SECRET", "from-the-environment")
    assert steward_settings.var_secret("STEWARD_TEST_SECRET", "test-secret") == "from-the-environment"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", "mysql://root@localhost/steward", "DATABASE_URL must be a postgres:// or sqlite:// URL"),
        ("DATABASE_URL", "not a url", "DATABASE_URL"),
        ("REDIS_URL", "memcached://localhost", "REDIS_URL='memcached://localhost' must start with"),
        ("DEBUG", "perhaps", "DEBUG='perhaps' is not a boolean"),
        ("CELERY_TASK_SOFT_TIME_LIMIT", "0", "CELERY_TASK_SOFT_TIME_LIMIT=0 is below the minimum of 1"),
    ],
)
def test_bad_environment_stops_the_process_with_the_variable_named(name: str, value: str, message: str) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, name: value}
    result = subprocess.run(
        [sys.executable, "-c", "import config.settings"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_a_worker_retries_the_broker_for_as_long_as_it_is_down() -> None:
    conf = celery_app.conf
    assert (conf.broker_connection_retry_on_startup, conf.broker_connection_retry) == (True, True)
    assert conf.broker_connection_max_retries is None  # Celery's default, 100 attempts, then the worker exits
    assert conf.broker_channel_error_retry is True
