"""``make run``'s last step: start the web server, a Celery worker, Celery beat and, on the embedded
default, Redis; once every one of them answers, print where to go and how to sign in; Ctrl-C stops every
process started here. A process that dies is started again (``config.supervisor``), so that one process dying
does not take the platform down.

Run as ``python -m config.serve``. A Redis already answering on the embedded socket is reused. The terminal
stays readable: gunicorn's access log goes to ``var/access.log``, the embedded Redis logs to
``var/redis.log``, and the worker and beat log warnings only. ``RUN_LOG_LEVEL=INFO`` brings their progress
back to the terminal, and the access log with it.
"""

import json
import os
import shlex
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from config.celery import app as celery_app
from config.supervisor import Supervisor

# How long the processes may take to answer before the banner says which of them has not.
READY_TIMEOUT_SECONDS = 120.0
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

Check = tuple[str, Callable[[], bool]]


def log_level() -> str:
    """The worker's and beat's log level on the terminal: ``RUN_LOG_LEVEL``, ``WARNING`` by default."""
    level = os.environ.get("RUN_LOG_LEVEL", "WARNING").strip().upper()
    if level not in LOG_LEVELS:
        raise SystemExit(f"RUN_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    return level


def commands(*, port: str, var_dir: Path, level: str, bin_dir: str, worker: str) -> dict[str, str]:
    """The web server, the worker (named ``worker``, so that readiness asks it and no other) and beat, each a shell
    command for the supervisor."""
    verbose = level in {"DEBUG", "INFO"}
    access_log = "-" if verbose else str(var_dir / "access.log")
    celery = f"{bin_dir}/celery -A config" + ("" if verbose else " --quiet")  # quiet: no start-up banners
    return {  # exec'd by the shell the supervisor starts them in: each one's pid is its own
        "web": f"exec {bin_dir}/gunicorn config.wsgi --bind 127.0.0.1:{port} --workers 2 --threads 4 "
        f"--access-logfile {access_log} --log-level {level.lower()} --graceful-timeout 5",
        "worker": f"exec {celery} worker --loglevel {level} --concurrency 2 -n {worker}",
        "beat": f"exec {celery} beat --loglevel {level} --schedule {var_dir / 'celerybeat-schedule'}",
    }


# --- readiness ----------------------------------------------------------------------------------------------------


def wait_until_ready(
    checks: Sequence[Check], *, timeout: float, interval: float = 0.5, stop: threading.Event | None = None
) -> list[str]:
    """Try each check in turn until it passes, the next one only once the one before passed (the worker is asked
    only once the web server says Redis answers). The names of the checks that had not passed when ``timeout``
    seconds were over or ``stop`` was set; [] when every one passed."""
    stop = stop or threading.Event()
    deadline = time.monotonic() + timeout
    for index, (_, check) in enumerate(checks):
        while not check():
            if stop.is_set() or time.monotonic() >= deadline:
                return [name for name, _ in checks[index:]]
            stop.wait(interval)
    return []


def web_answers(port: str) -> Callable[[], bool]:
    """``/readyz`` answers: the web server is up and reaches the database and Redis (whether a worker is heard from
    yet is the worker's check)."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                body = response.read()
        except urllib.error.HTTPError as error:  # 503: something is down, the body says what
            body = error.read()
        except OSError:  # refused while gunicorn starts
            return False
        try:
            checks = json.loads(body)["checks"]
        except (ValueError, KeyError, TypeError):
            return False
        return bool(checks.get("database") == "ok" and checks.get("redis") == "ok")

    return check


def worker_answers(name: str) -> Callable[[], bool]:
    """The Celery worker called ``name`` answers a ping on the broker."""

    def check() -> bool:
        try:
            return bool(celery_app.control.ping(destination=[name], timeout=1.0))
        except Exception:  # any broker error means "not yet"
            return False

    return check


def beat_started(schedule: Path) -> Callable[[], bool]:
    """Beat has written its schedule file (``celerybeat-schedule``, with whatever suffix dbm gives it) since this
    was called: it is up and ticking. Told by the files' modification times before and after, never by the clock
    (the file system's clock and the process's may differ)."""

    def written() -> dict[Path, float]:
        return {path: path.stat().st_mtime for path in schedule.parent.glob(schedule.name + "*")}

    before = written()

    def check() -> bool:
        return any(before.get(path) != mtime for path, mtime in written().items())

    return check


# --- the banner -----------------------------------------------------------------------------------------------


def credentials() -> list[str]:
    """How to sign in: the console admin, as ``manage.py bootstrap`` made it (its password is kept in
    ``var/admin-password``), and while the demo is installed the demo users and the demo API token."""
    from django.apps import apps
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from governance.management.commands.bootstrap import ADMIN_USERNAME

    admin_file = settings.VAR_DIR / "admin-password"
    if not admin_file.exists():
        return ["  No accounts yet: run `python manage.py bootstrap` (make run does) and start again."]
    admin_password = admin_file.read_text().strip()
    admin = get_user_model()._default_manager.filter(username=ADMIN_USERNAME).first()
    admin_note = (
        f"password {admin_password}"
        if admin is not None and admin.check_password(admin_password)
        else f"password changed since it was written to {admin_file}"
    )
    lines = [f"  Console admin:  {ADMIN_USERNAME} / {admin_note}"]
    if apps.is_installed("demo"):
        from demo import cast

        lines += cast.credentials()
    return lines


def banner(port: str, *, not_ready: Sequence[str] = ()) -> str:
    """What ``make run`` prints once everything answers: where to go and how to sign in."""
    base = f"http://127.0.0.1:{port}"
    if not_ready:
        status = f"  Steward is up, but not all of it: {', '.join(not_ready)} did not answer; see the log above."
    else:
        status = "  Steward is ready."
    return "\n".join(
        [
            "",
            status,
            f"    Console:   {base}/admin/",
            f"    API docs:  {base}/api/docs/",
            f"    Readiness: {base}/readyz",
            *credentials(),
            "  Press Ctrl-C to stop every process.",
            "",
        ]
    )


def announce(port: str, checks: Sequence[Check], stop: threading.Event) -> None:
    """Wait for the processes, then print the banner (naming what did not answer in time), unless stopped."""
    not_ready = wait_until_ready(checks, timeout=READY_TIMEOUT_SECONDS, stop=stop)
    if stop.is_set():
        return
    sys.stdout.write(banner(port, not_ready=not_ready) + "\n")
    sys.stdout.flush()


def main() -> int:
    level = log_level()
    os.environ.setdefault("LOG_LEVEL", level)  # the processes' own Django logging, unless set apart
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings

    from config import embedded_redis

    port = os.environ.get("PORT", "8000")
    supervisor = Supervisor()
    if settings.REDIS_EMBEDDED and not embedded_redis.is_running(settings.REDIS_SOCKET):
        redis = [*embedded_redis.command(settings.REDIS_SOCKET), "--logfile", str(settings.VAR_DIR / "redis.log")]
        supervisor.add_process("redis", f"exec {shlex.join(redis)}")
    bin_dir, worker = os.path.dirname(sys.executable), f"steward-{os.getpid()}@{socket.gethostname()}"
    for name, command in commands(
        port=port, var_dir=settings.VAR_DIR, level=level, bin_dir=bin_dir, worker=worker
    ).items():
        supervisor.add_process(name, command)
    checks = [
        ("web", web_answers(port)),
        ("worker", worker_answers(worker)),
        ("beat", beat_started(settings.VAR_DIR / "celerybeat-schedule")),
    ]
    stop = threading.Event()
    threading.Thread(target=announce, args=(port, checks, stop), daemon=True, name="announce").start()
    sys.stdout.write("\n  Steward is starting; where to go and how to sign in follow once it answers.\n\n")
    sys.stdout.flush()
    try:
        supervisor.loop()
    finally:
        stop.set()
    # Ctrl-C (130) or SIGTERM (143) is how the platform is meant to stop: not a failure.
    return 0 if supervisor.returncode in (None, 130, 143) else supervisor.returncode


if __name__ == "__main__":
    sys.exit(main())
