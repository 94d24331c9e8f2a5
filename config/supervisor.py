"""``make run``'s supervisor: it starts the platform's processes, prints their output (in honcho's format, one
prefixed line each), and starts again a process that dies, so that one process dying does not take the others down.

A process that exits while the platform is not stopping is started again after a delay (``RestartPolicy``): one
second, doubled after each *quick* failure (one within ``quick_seconds`` of its start) up to ``max_delay``; a process
that ran longer before it died starts its count afresh. Each restart is one line of output, saying what exited, how,
and when it comes back. After ``give_up_after`` quick failures in a row the supervisor gives up on it: it says so,
stops everything, and exits 1. Ctrl-C and SIGTERM stop everything (SIGTERM to each process group, SIGKILL to what
remains ``KILL_WAIT_SECONDS`` later).

Each command runs through the shell (``exec`` it, and its pid is the process's own), in a session of its own. When
one exits, what it leaves behind in its process group (a killed Celery worker's pool processes) is killed with it.
"""

import contextlib
import datetime as dt
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import IO

from honcho.colour import get_colours
from honcho.printer import Message, Printer

SYSTEM = "system"  # the name the supervisor's own lines go under
KILL_WAIT_SECONDS = 5.0
POLL_SECONDS = 0.1
STOP_SIGNALS = {signal.SIGINT: ("SIGINT", 130), signal.SIGTERM: ("SIGTERM", 143)}


@dataclass(frozen=True)
class RestartPolicy:
    """When a process that died is started again, and when the supervisor gives up on it (the module's docstring)."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    quick_seconds: float = 10.0
    give_up_after: int = 5

    def delay(self, quick_failures: int) -> float:
        """How long to wait before a start after ``quick_failures`` quick failures in a row."""
        return min(self.max_delay, self.first_delay * 2 ** max(0, quick_failures - 1))


@dataclass
class Child:
    """A process of the platform: its command, the running process if any, and its restarts so far."""

    name: str
    command: str
    colour: str
    popen: "subprocess.Popen[bytes] | None" = None
    started_at: float = 0.0
    quick_failures: int = 0
    restarts: int = 0
    start_at: float | None = None  # when it is to be started (again)


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(pid, sig)


class Supervisor:
    """Add processes with ``add_process``, then ``loop()`` until everything stopped; ``returncode`` says why."""

    def __init__(self, *, policy: RestartPolicy | None = None, output: IO[str] | None = None) -> None:
        self.policy = policy or RestartPolicy()
        self.printer = Printer(output or sys.stdout, width=len(SYSTEM))
        self.lines: queue.Queue[Message] = queue.Queue()
        self.children: dict[str, Child] = {}
        self.returncode: int | None = None
        self.stopping = False
        self.kill_at: float | None = None  # when what is still running gets SIGKILL
        self._signalled: signal.Signals | None = None
        self._colours = get_colours()

    def add_process(self, name: str, command: str) -> None:
        assert name not in {*self.children, SYSTEM}, name
        self.children[name] = Child(name, command, next(self._colours), start_at=0.0)
        self.printer.width = max(self.printer.width, len(name))

    def loop(self, *, handle_signals: bool = True) -> int | None:
        """Run every process until the platform is stopped: by SIGINT or SIGTERM (with ``handle_signals``, which
        only the main thread may), ``stop()``, or a process given up on."""
        if handle_signals:
            for signum in STOP_SIGNALS:
                signal.signal(signum, self._on_signal)
        while not self._done():
            self._print_lines(timeout=POLL_SECONDS)
            if self._signalled is not None:
                name, returncode = STOP_SIGNALS[self._signalled]
                self._signalled = None
                self._say(f"{name} received")
                self.stop(returncode)
            now = time.monotonic()
            for child in self.children.values():
                self._tend(child, now)
            if self.kill_at is not None and now >= self.kill_at:
                self._signal_all(signal.SIGKILL)
                self.kill_at = None
        self._print_lines(timeout=0)
        return self.returncode

    def stop(self, returncode: int) -> None:
        """Stop every process (SIGTERM now, SIGKILL later); ``loop()`` returns once they are all gone."""
        if self.stopping:
            return
        self.returncode = returncode if self.returncode is None else self.returncode
        self.stopping, self.kill_at = True, time.monotonic() + KILL_WAIT_SECONDS
        self._signal_all(signal.SIGTERM)

    # --- each process -------------------------------------------------------------------------------------------

    def _tend(self, child: Child, now: float) -> None:
        """Notice that the child exited, or start it when it is due (never while stopping)."""
        if child.popen is not None:
            if child.popen.poll() is not None:
                self._exited(child, child.popen, now)
        elif child.start_at is not None and now >= child.start_at and not self.stopping:
            self._start(child)

    def _start(self, child: Child) -> None:
        child.popen = subprocess.Popen(  # noqa: S602  # our own commands, through the shell as honcho ran them
            child.command, shell=True, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        child.started_at, child.start_at = time.monotonic(), None
        threading.Thread(target=self._forward, args=(child, child.popen), daemon=True, name=child.name).start()
        self._say(f"{child.name} started (pid={child.popen.pid})")

    def _forward(self, child: Child, popen: "subprocess.Popen[bytes]") -> None:
        """The process's output, line by line, to the main loop (the only one that prints)."""
        assert popen.stdout is not None
        for line in iter(popen.stdout.readline, b""):
            self.lines.put(Message("line", line, dt.datetime.now(), child.name, child.colour))
        popen.stdout.close()

    def _exited(self, child: Child, popen: "subprocess.Popen[bytes]", now: float) -> None:
        child.popen = None
        _kill_group(popen.pid, signal.SIGKILL)  # what it left behind goes with it
        ran, code = now - child.started_at, popen.returncode
        if self.stopping:
            self._say(f"{child.name} stopped (rc={code})")
            return
        child.quick_failures = child.quick_failures + 1 if ran < self.policy.quick_seconds else 0
        if child.quick_failures >= self.policy.give_up_after:
            self._say(
                f"{child.name} stopped (rc={code}) {child.quick_failures} times in a row within "
                f"{self.policy.quick_seconds:g} s of starting: not starting it again. Stopping Steward; see its "
                "output above."
            )
            self.stop(1)
            return
        delay = self.policy.delay(child.quick_failures)
        child.restarts, child.start_at = child.restarts + 1, now + delay
        self._say(
            f"{child.name} stopped (rc={code}) after {ran:.0f} s: starting it again in {delay:g} s "
            f"(restart {child.restarts})"
        )

    # --- all of them ----------------------------------------------------------------------------------------------

    def _done(self) -> bool:
        return self.stopping and all(child.popen is None for child in self.children.values())

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Noted for the loop, which acts on it: a handler that printed could interrupt a print of the loop's."""
        self._signalled = signal.Signals(signum)

    def _signal_all(self, sig: int) -> None:
        for child in self.children.values():
            if child.popen is not None and child.popen.poll() is None:
                self._say(f"sending {signal.Signals(sig).name} to {child.name} (pid {child.popen.pid})")
                _kill_group(child.popen.pid, sig)

    def _say(self, text: str) -> None:
        self.printer.write(Message("line", text, dt.datetime.now(), SYSTEM, None))

    def _print_lines(self, *, timeout: float) -> None:
        try:
            message = self.lines.get(timeout=timeout) if timeout else self.lines.get_nowait()
            while True:
                self.printer.write(message)
                message = self.lines.get_nowait()
        except queue.Empty:
            return
