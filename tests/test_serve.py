"""``make run``'s last step (``config.serve``): it waits until the web server, the worker and beat answer, then
prints where to go and how to sign in, and keeps the processes' routine logs off the terminal."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from config import serve
from tests.brokers import redis_server
from tests.support import child_environment

ROOT = Path(__file__).resolve().parent.parent


# --- waiting for readiness ------------------------------------------------------------------------------------


def becomes_true_after(calls: int, log: list[str], name: str) -> Callable[[], bool]:
    def check() -> bool:
        log.append(name)
        return log.count(name) > calls

    return check


def test_readiness_is_waited_for_in_order_each_check_only_once_the_one_before_passed() -> None:
    log: list[str] = []
    checks = [("web", becomes_true_after(2, log, "web")), ("worker", becomes_true_after(1, log, "worker"))]
    assert serve.wait_until_ready(checks, timeout=5, interval=0.01) == []
    assert log == ["web", "web", "web", "worker", "worker"]


def test_what_is_not_ready_by_the_timeout_is_named_with_what_comes_after_it() -> None:
    log: list[str] = []
    checks = [
        ("web", becomes_true_after(0, log, "web")),
        ("worker", lambda: False),
        ("beat", becomes_true_after(0, log, "beat")),
    ]
    started = time.monotonic()
    assert serve.wait_until_ready(checks, timeout=0.2, interval=0.01) == ["worker", "beat"]
    assert 0.2 <= time.monotonic() - started < 2
    assert "beat" not in log


def test_stopping_ends_the_wait_at_once() -> None:
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    assert serve.wait_until_ready([("web", lambda: False)], timeout=60, interval=10, stop=stop) == ["web"]
    assert time.monotonic() - started < 5


def test_beat_is_started_once_its_schedule_is_written_after_the_check_was_made(tmp_path: Path) -> None:
    schedule = tmp_path / "celerybeat-schedule"
    old = tmp_path / "celerybeat-schedule.dat"
    old.write_text("from the last run")
    os.utime(old, (1, 1))
    started = serve.beat_started(schedule)
    assert not started()
    old.write_text("this run")  # the mtime moves, whatever the clocks say
    assert started()
    fresh = serve.beat_started(tmp_path / "other-schedule")
    assert not fresh()
    (tmp_path / "other-schedule.db").write_text("new")
    assert fresh()


def test_the_web_check_asks_readyz(live_server: Any) -> None:
    port = live_server.url.rsplit(":", 1)[1]
    assert serve.web_answers(port)()
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        free = str(unused.getsockname()[1])
    assert not serve.web_answers(free)()


def test_the_web_is_up_while_no_worker_is_heard_from_yet_but_not_without_redis(
    live_server: Any, settings: Any, tmp_path: Path
) -> None:
    port = live_server.url.rsplit(":", 1)[1]
    with redis_server(tmp_path / "redis") as server:
        settings.REDIS_URL = server.url  # a Redis no worker has written to: /readyz is 503 for want of one
        assert serve.web_answers(port)()
    assert not serve.web_answers(port)()  # that Redis is gone


# --- the banner and the processes -------------------------------------------------------------------------------


@pytest.fixture
def bootstrapped(db: None, settings: Any, tmp_path: Path) -> Path:
    settings.VAR_DIR = tmp_path / "var"
    call_command("bootstrap", stdout=StringIO())
    return Path(settings.VAR_DIR)


def test_the_banner_says_where_to_go_and_how_to_sign_in(bootstrapped: Path) -> None:
    printed = serve.banner("8123")
    demo_password = (bootstrapped / "demo-password").read_text().strip()
    admin_password = (bootstrapped / "admin-password").read_text().strip()
    token = Token.objects.get(user__username="client").key
    assert printed.splitlines()[1:] == [
        "  Steward is ready.",
        "    Console:   http://127.0.0.1:8123/admin/",
        "    API docs:  http://127.0.0.1:8123/api/docs/",
        "    Readiness: http://127.0.0.1:8123/readyz",
        f"  Console admin:  admin / password {admin_password}",
        f"  Demo users:     viewer, auditor, editor, approver, approver2, operator, client (password {demo_password}), "
        "one role each",
        f"  Demo API token: {token} (user client, a client application)",
        "  Press Ctrl-C to stop every process.",
    ]


def test_the_banner_says_what_did_not_answer_and_when_the_admin_password_changed(bootstrapped: Path) -> None:
    admin = User.objects.get(username="admin")
    admin.set_password("something else")
    admin.save(update_fields=["password"])
    printed = serve.banner("8000", not_ready=["worker", "beat"])
    assert "Steward is up, but not all of it: worker, beat did not answer" in printed
    assert f"admin / password changed since it was written to {bootstrapped / 'admin-password'}" in printed


def test_bootstrap_leaves_the_credentials_to_the_banner(db: None, settings: Any, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path / "var"
    assert "No accounts yet: run `python manage.py bootstrap`" in serve.banner("8000")
    out = StringIO()
    call_command("bootstrap", stdout=out)
    assert (settings.VAR_DIR / "demo-password").read_text().strip() not in out.getvalue()
    assert str(settings.VAR_DIR / "demo-password") in out.getvalue()


@pytest.mark.parametrize(
    ("level", "access_log", "quiet"), [("WARNING", "{var}/access.log", True), ("INFO", "-", False)]
)
def test_routine_logs_stay_off_the_terminal_unless_asked_for(level: str, access_log: str, quiet: bool) -> None:
    found = serve.commands(port="8000", var_dir=Path("/v"), level=level, bin_dir="/b", worker="w@h")
    assert f"--access-logfile {access_log.format(var='/v')} --log-level {level.lower()}" in found["web"]
    assert f"worker --loglevel {level} --concurrency 2 -n w@h" in found["worker"]
    assert f"beat --loglevel {level} --schedule /v/celerybeat-schedule" in found["beat"]
    assert all((" --quiet " in found[name]) == quiet for name in ("worker", "beat"))


def test_the_log_level_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUN_LOG_LEVEL", "info")
    assert serve.log_level() == "INFO"
    monkeypatch.setenv("RUN_LOG_LEVEL", "chatty")
    with pytest.raises(SystemExit, match="RUN_LOG_LEVEL must be one of"):
        serve.log_level()


# --- make run's last step, for real ---------------------------------------------------------------------------


@pytest.fixture
def serving(transactional_db: None, settings: Any, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """``python -m config.serve`` on a free port, against the test database, with a var dir of its own."""
    settings.VAR_DIR = tmp_path / "var"
    call_command("bootstrap", stdout=StringIO())
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = str(unused.getsockname()[1])
    env = {**child_environment(), "STEWARD_VAR_DIR": str(settings.VAR_DIR), "PORT": port}
    env.pop("RUN_LOG_LEVEL", None)
    env.pop("LOG_LEVEL", None)
    output = tmp_path / "serve.out"
    with output.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "config.serve"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
    yield process, output
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.worker
def test_make_run_prints_the_banner_once_everything_answers(serving: tuple[subprocess.Popen[str], Path]) -> None:
    process, output = serving
    deadline = time.monotonic() + 120
    while "Press Ctrl-C" not in output.read_text():
        assert process.poll() is None, output.read_text()
        assert time.monotonic() < deadline, output.read_text()
        time.sleep(0.5)
    printed = output.read_text()
    before, banner = printed.split("  Steward is ready.\n", 1)
    assert re.search(r"system \| worker started", before), printed
    assert "Demo API token: " + Token.objects.get(user__username="client").key in banner
    assert "GET /readyz" not in printed
    assert "GET /readyz" in (output.parent / "var" / "access.log").read_text()
    assert "[queues]" not in printed  # no start-up banners
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
