"""The product without the demo (``STEWARD_DEMO=off``, as in production): a fresh database migrates, bootstraps and
passes Django's checks, with the admin account made and nothing of the demo imported, migrated or seeded. In
processes of their own, on a SQLite file and a var dir of the test's: the suite's own process has the demo."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import demo.tools
from agents.tools import registered

ROOT = Path(__file__).resolve().parent.parent

# What a process without the demo has registered and imported, as one line of JSON.
PROBE = (
    "import json, sys; from agents.tools import registered; "
    "demo = sorted(name for name in sys.modules if name.split('.')[0] == 'demo'); "
    "print(json.dumps({'tools': sorted(registered()), 'modules': demo}))"
)


def manage(tmp_path: Path, *args: str) -> str:
    """``manage.py *args`` with the demo off, on the test's database and var dir; what it printed."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "STEWARD_DEMO": "off",
        "STEWARD_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'steward.sqlite3'}",
    }
    env.pop("AGENTS_TOOL_MODULES", None)
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_product_migrates_bootstraps_and_checks_without_the_demo(tmp_path: Path) -> None:
    demo_tools = {name for name, spec in registered().items() if spec.function.__module__ == demo.tools.__name__}
    assert demo_tools  # this process has the demo: its tools are what the other must not have

    manage(tmp_path, "migrate", "--noinput")
    bootstrapped = manage(tmp_path, "bootstrap")
    checked = manage(tmp_path, "check")
    probe = json.loads(manage(tmp_path, "shell", "--no-imports", "-c", PROBE).splitlines()[-1])

    assert "Account ready: admin" in bootstrapped
    assert "Demo" not in bootstrapped
    assert "no issues" in checked
    assert not demo_tools & set(probe["tools"])
    assert probe["modules"] == []
    with sqlite3.connect(tmp_path / "steward.sqlite3") as database:
        tables = {name for (name,) in database.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        users = [name for (name,) in database.execute("SELECT username FROM auth_user")]
        migrated = {app for (app,) in database.execute("SELECT DISTINCT app FROM django_migrations")}
    assert {"agents_tool", "auth_user"} <= tables
    assert not {table for table in tables if "demo" in table}
    assert users == ["admin"]
    assert "agents" in migrated
    assert "demo" not in migrated
