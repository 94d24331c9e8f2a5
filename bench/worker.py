"""The run benchmark's Celery worker: ``celery -A config worker`` on a queue of its own, started as the tests start
one, with ``bench.tools`` added to its tool modules; waiting on it, and what its log says went wrong."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import redis
from django.conf import settings

from bench import tools as bench_tools
from bench.common import BenchError
from config import celery_app

BENCH_TOOL_MODULE = "bench.tools"
WORKER_START_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 30.0
POLL_SECONDS = 0.05
WORKER_LOG_PROBLEM = re.compile(r"^\[[^\]]*(?:ERROR|CRITICAL)/.*$|^Traceback \(most recent call last\):$", re.M)
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Failure|Lost)\w*: .*$", re.MULTILINE)


def tool_modules() -> str:
    return ",".join(dict.fromkeys([*settings.AGENTS_TOOL_MODULES, BENCH_TOOL_MODULE]))


class Worker:
    """``celery -A config worker`` on its own queue and the throw-away database, as ``tests/conftest.py`` starts it."""

    def __init__(self, database_url: str, queue: str, concurrency: int, logs: Path) -> None:
        self.queue = queue
        self.name = f"{queue}@localhost"
        self.pool = "solo" if concurrency == 1 else "prefork"
        self.concurrency = concurrency
        self.log_path = logs / "worker.log"
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", self.pool]
        command += ["--concurrency", str(concurrency), "-Q", queue, "-n", self.name]
        command += ["--loglevel", "INFO", "--without-gossip", "--without-mingle"]
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url,
            "STEWARD_VAR_DIR": str(settings.VAR_DIR),
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "AGENTS_TOOL_MODULES": tool_modules(),
        }
        self.log_handle = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603  (a fixed argv: this interpreter's celery)
            command,
            cwd=settings.BASE_DIR,
            env=environment,
            stdout=self.log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a prefork pool is stopped with it, see stop()
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_until_ready(self) -> float:
        """Ping the worker by name until it answers; the seconds it took."""
        started = time.monotonic()
        while not celery_app.control.ping(destination=[self.name], timeout=0.5):
            if self.process.poll() is not None:
                raise BenchError(f"the Celery worker exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() - started > WORKER_START_TIMEOUT:
                timeout = f"{WORKER_START_TIMEOUT:.0f} s"
                raise BenchError(f"the Celery worker did not answer within {timeout}:\n{self.log_tail()}")
        if f"{bench_tools.bare_steps_task.name}" not in self.log_text():
            raise BenchError(f"the worker does not know {bench_tools.bare_steps_task.name}:\n{self.log_tail()}")
        return time.monotonic() - started

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"the Celery worker exited with {self.process.returncode}:\n{self.log_tail()}")

    def stop(self) -> None:
        """Warm shutdown (SIGTERM); its whole process group is killed if it takes too long."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=WORKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log_handle.close()

    def problems(self) -> Counter[str]:
        """Errors in the worker's log: ERROR/CRITICAL lines and the last line of every traceback, counted."""
        text = self.log_text()
        found: Counter[str] = Counter()
        for match in WORKER_LOG_PROBLEM.finditer(text):
            if not match.group(0).startswith("Traceback"):
                found[re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "{id}", match.group(0).split("] ", 1)[-1])[:240]] += 1
        for match in EXCEPTION_LINE.finditer(text):
            found[match.group(0)[:240]] += 1
        return found


def forget_queue(queue: str) -> None:
    """Remove what the broker keeps for the worker's queue (normally nothing is left but the binding)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        priorities = client.scan_iter(match=f"{queue}\x06\x16*")
        keys = [queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}", *priorities]
        client.delete(*keys)
    finally:
        client.close()


def wait_for(
    what: str, worker: Worker, total: int, done: Callable[[], int], stall_seconds: float, stuck: Callable[[], str]
) -> None:
    """Poll ``done()`` until it reaches ``total``; fail at once when the worker logs an error or exits, and when
    ``done()`` does not move for ``stall_seconds``."""
    last, moved, polls = -1, time.monotonic(), 0
    while True:
        count = done()
        if count >= total:
            return
        if count != last:
            last, moved = count, time.monotonic()
        worker.check_alive()
        polls += 1
        if polls % 10 == 0 and worker.problems():
            raise BenchError(f"{what}: the worker logged errors, at {count} of {total} done.\n{stuck()}")
        if time.monotonic() - moved > stall_seconds:
            raise BenchError(f"{what}: stuck at {count} of {total} done for {stall_seconds:.0f} s.\n{stuck()}")
        time.sleep(POLL_SECONDS)


def redis_description() -> str:
    if settings.REDIS_EMBEDDED:
        return f"embedded Redis on {settings.REDIS_SOCKET}"
    parts = urlsplit(settings.REDIS_URL)  # shown without any password
    return f"Redis at {parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"
