"""Helpers shared by tests: the tools released, other processes on the test database, polling, and simulated
attacks."""

import os
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection

from agents.models import Tool
from agents.services import tools_sync
from agents.tool_versions import TOOL_KIND
from audit.context import Actor
from governance.demo import latest_released
from governance.models import GovernedObject


def tools_release(
    approver: User, *, names: Sequence[str] | None = None, labels: Sequence[str] = ("staging", "production")
) -> None:
    """Every tool registered in this process synced to the database (once a test), and the definitions of the tools
    ``names`` (all when None) as synced approved by ``approver`` and released under ``labels``: what an agent version
    submitted afterwards pins. The tool versions are the system's (synced from code), so any approver may decide
    them. Releasing only the tools a test's agents grant keeps the suite fast: each costs some 30 statements."""
    if not Tool.objects.exists():
        tools_sync(actor=Actor.system("tests"))
    tools = GovernedObject.objects.filter(kind=TOOL_KIND).order_by("slug")
    if names is not None:
        tools = tools.filter(slug__in=list(names))
    latest_released([approver], list(tools), note="Tests: the tools as synced from code", labels=labels)


def granted(spec: dict[str, Any]) -> list[str]:
    """The tools an agent spec grants, and those its tools' compensations call."""
    from agents.tools import registered

    names = [grant["tool"] for grant in spec.get("grants") or []]
    undo = [tool.compensation.tool for name in names if (tool := registered().get(name)) and tool.compensation]
    return names + undo


# The tests' loopback model servers and the variables their keys are read from (tests/chat_server.py).
TEST_MODEL_HOSTS = ("127.0.0.1", "localhost")
TEST_MODEL_KEYS = ("TEST_*", "OTHER_*")


def database_url_for_children() -> str:
    """A DATABASE_URL pointing other processes at the database the tests use."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    credentials = quote(params["USER"]) + (f":{quote(params['PASSWORD'])}" if params["PASSWORD"] else "")
    return f"postgres://{credentials}@{params['HOST'] or 'localhost'}:{params['PORT'] or 5432}/{params['NAME']}"


def child_environment(*, queue: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_children(),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        # The demo tools, and the tools the agent tests run (tests/agents/tools.py).
        "AGENTS_TOOL_MODULES": "demo.tools,tests.agents.tools",
        # Other processes' checkpoints go to a file of this test run's, not to the installation's sink.
        "AUDIT_CHECKPOINT_SINK": f"file:{settings.VAR_DIR / 'test-worker-checkpoints.jsonl'}",
        "MODEL_ALLOWED_HOSTS": ",".join(["api.openai.com", "api.anthropic.com", *TEST_MODEL_HOSTS]),
        "MODEL_KEY_VARIABLES": ",".join(["OPENAI_API_KEY", "ANTHROPIC_API_KEY", *TEST_MODEL_KEYS]),
    }
    if queue:
        env["CELERY_TASK_DEFAULT_QUEUE"] = queue
    return env


def wait_for(condition: Callable[[], Any], *, timeout: float = 30.0, message: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {message}")


def tamper(sql: str, params: Sequence[Any] = ()) -> None:
    """Run raw SQL as an attacker with database-superuser rights would: past the append-only trigger.

    Must run inside the test's transaction (the ``db`` fixture), which rolls it back afterwards.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")
