"""``make run``'s last step (``config.serve``): it waits until the web server, the worker and beat answer, then
prints where to go and how to sign in, and keeps the processes' routine logs off the terminal."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from config import serve, supervisor
from tests.brokers import redis_server
from tests.support import child_environment, wait_for

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


# --- the supervisor ----------------------------------------------------------------------------------------------


def test_restarts_wait_longer_after_each_quick_failure_up_to_a_limit() -> None:
    policy = supervisor.RestartPolicy(first_delay=1, max_delay=30)
    assert [policy.delay(failures) for failures in range(8)] == [1, 1, 2, 4, 8, 16, 30, 30]


def supervise(policy: supervisor.RestartPolicy, processes: dict[str, str]) -> tuple[int | None, str, float]:
    """Run a supervisor of ``processes`` to its end, in a thread (the test keeps its own signal handlers), as long as
    15 s at most; what it returned, printed, and how long it ran."""
    output = StringIO()
    supervised = supervisor.Supervisor(policy=policy, output=output)
    for name, command in processes.items():
        supervised.add_process(name, command)
    result: list[int | None] = []
    started = time.monotonic()
    thread = threading.Thread(target=lambda: result.append(supervised.loop(handle_signals=False)), daemon=True)
    thread.start()
    thread.join(timeout=15)
    if thread.is_alive():
        supervised.stop(1)
        thread.join(timeout=10)
        pytest.fail(f"the supervisor did not end:\n{output.getvalue()}")
    return result[0], output.getvalue(), time.monotonic() - started


def test_a_process_that_keeps_failing_is_restarted_with_a_backoff_then_given_up_on_and_everything_stops() -> None:
    policy = supervisor.RestartPolicy(first_delay=0.1, quick_seconds=10, give_up_after=3)
    returncode, printed, took = supervise(policy, {"flaky": "echo trying; exit 3", "steady": "sleep 60"})
    assert returncode == 1
    assert printed.count("flaky  | trying") == 3
    restarts = re.findall(
        r"flaky stopped \(rc=3\) after 0 s: starting it again in ([0-9.]+) s \(restart (\d)\)", printed
    )
    assert restarts == [("0.1", "1"), ("0.2", "2")]
    assert "flaky stopped (rc=3) 3 times in a row within 10 s of starting: not starting it again. Stopping" in printed
    assert re.search(r"sending SIGTERM to steady \(pid \d+\)", printed)
    assert "steady stopped (rc=-15)" in printed
    assert took < 5


def test_a_process_that_ran_a_while_before_it_died_starts_its_count_afresh(tmp_path: Path) -> None:
    count = tmp_path / "count"
    # Runs 1 and 2 fail at once, run 3 after a while, runs 4 to 6 at once again.
    command = f"n=$(cat {count} 2>/dev/null || echo 0); echo $((n+1)) > {count}; [ $n -eq 2 ] && sleep 1.2; exit 1"
    policy = supervisor.RestartPolicy(first_delay=0.1, quick_seconds=1, give_up_after=3)
    returncode, printed, _ = supervise(policy, {"flaky": command})
    assert returncode == 1
    delays = re.findall(r"flaky stopped \(rc=1\) after \d s: starting it again in ([0-9.]+) s", printed)
    assert delays == ["0.1", "0.2", "0.1", "0.1", "0.2"]
    assert "flaky stopped (rc=1) 3 times in a row" in printed
    assert count.read_text().strip() == "6"


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


def banner_printed(process: subprocess.Popen[str], output: Path) -> str:
    deadline = time.monotonic() + 120
    while "Press Ctrl-C" not in output.read_text():
        assert process.poll() is None, output.read_text()
        assert time.monotonic() < deadline, output.read_text()
        time.sleep(0.5)
    return output.read_text()


def api_call(port: str, token: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(  # the loopback address of the server under test
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def readyz_of(port: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.worker
def test_a_killed_worker_is_started_again_and_the_platform_still_answers_and_runs(
    serving: tuple[subprocess.Popen[str], Path],
) -> None:
    process, output = serving
    printed = banner_printed(process, output)
    (pid,) = re.findall(r"system \| worker started \(pid=(\d+)\)", printed)
    port = re.search(r"Readiness: http://127.0.0.1:(\d+)/readyz", printed).group(1)  # type: ignore[union-attr]

    os.kill(int(pid), signal.SIGKILL)

    restarted = wait_for(
        lambda: re.findall(r"system \| worker started \(pid=(\d+)\)", output.read_text())[1:],
        timeout=30,
        message=f"the worker to start again\n{output.read_text()}",
    )
    assert restarted != [pid]
    log = output.read_text()
    assert len(re.findall(r"worker stopped \(rc=-9\) after \d+ s: starting it again in 1 s \(restart 1\)", log)) == 1
    assert process.poll() is None, log
    token = Token.objects.get(user__username="client").key
    run = api_call(port, token, "POST", "/api/agents/order-agent/runs/", {"input": {"order_id": "SO-12345"}})
    finished = wait_for(
        lambda: (found := api_call(port, token, "GET", f"/api/runs/{run['id']}/"))["status"] == "succeeded" and found,
        timeout=60,
        message=f"the run on the restarted worker\n{output.read_text()[-3000:]}",
    )
    assert finished["result"]["answer"].startswith("Order SO-12345 is")
    status, ready = readyz_of(port)
    assert status == 200, ready
    name = f"steward-{process.pid}@{socket.gethostname()}"  # make run's worker (others may share a REDIS_URL)
    assert [worker["alive"] for worker in ready["workers"] if worker["name"] == name] == [True]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
