"""Tools for the agent tests, registered with ``@tool`` like any other. The test process imports this module in
``tests/agents/conftest.py``; worker processes started by the tests import it through ``AGENTS_TOOL_MODULES``
(``tests.support.child_environment``).

Every write leaves one line in a file named in its arguments, so a test counts how many times a tool really ran,
whichever process ran it. ``test.slow`` and ``test.append_idem`` can wait for a *release* file, so a test can
catch a worker in the middle of a call (and kill it there).
"""

import os
import time
from pathlib import Path
from typing import Any

from agents.tools import Compensation, tool

WAIT_SECONDS = 20.0


def lines(path: str | Path) -> list[str]:
    """The lines the test tools wrote to ``path``; none when nothing ran."""
    file = Path(path)
    return file.read_text(encoding="utf-8").splitlines() if file.exists() else []


def _append(path: str, line: str) -> int:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    return len(lines(path))


def _wait_for(release: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.path.exists(release):
            return True
        time.sleep(0.05)
    return False


@tool("test.append", "Append a line to a file: not idempotent.", side_effect="write", idempotent=False)
def append(path: str, text: str, quantity: int = 1) -> dict[str, Any]:
    return {"text": text, "quantity": quantity, "lines": _append(path, text)}


@tool(
    "test.append_idem",
    "Append a line once per idempotency key; then wait for the release file, when one is named.",
    side_effect="write",
    timeout=WAIT_SECONDS + 10,
)
def append_idem(path: str, text: str, release: str = "", idempotency_key: str = "") -> dict[str, Any]:
    _append(f"{path}.calls", idempotency_key)
    done = {line.split("\t", 1)[0] for line in lines(path)}
    if idempotency_key not in done:
        _append(path, f"{idempotency_key}\t{text}")
    if release:
        _wait_for(release, WAIT_SECONDS)
    return {"text": text, "key": idempotency_key, "new": idempotency_key not in done}


@tool(
    "test.slow",
    "Note the start, wait for the release file (or some seconds), then append the text: not idempotent.",
    side_effect="write",
    idempotent=False,
    timeout=WAIT_SECONDS + 10,
)
def slow(path: str, release: str, text: str = "slow", seconds: float = WAIT_SECONDS) -> dict[str, Any]:
    _append(path, f"started {text}")
    released = _wait_for(release, seconds)
    return {"text": text, "released": released, "lines": _append(path, text)}


@tool("test.critical", "Append a line to a file: critical.", side_effect="write", risk="critical", idempotent=False)
def critical(path: str, text: str) -> dict[str, Any]:
    return {"text": text, "lines": _append(path, text)}


@tool(
    "test.put",
    "Append 'put <text>' to a file; undone by test.unput.",
    side_effect="write",
    idempotent=False,
    compensation=Compensation("test.unput", {"path": "args.path", "text": "args.text"}),
)
def put(path: str, text: str) -> dict[str, Any]:
    return {"text": text, "lines": _append(path, f"put {text}")}


@tool("test.unput", "Append 'unput <text>' to a file: the undo of test.put.", side_effect="write", idempotent=False)
def unput(path: str, text: str) -> dict[str, Any]:
    return {"text": text, "lines": _append(path, f"unput {text}")}


@tool("test.boom", "Always raises.")
def boom(message: str = "boom") -> dict[str, Any]:
    raise RuntimeError(message)


@tool("test.bad_result", "Returns something that is not JSON.")
def bad_result() -> Any:
    return {"values": {1, 2, 3}}


@tool("test.sleep", "Sleeps longer than its timeout allows.", timeout=0.5)
def sleep(seconds: float) -> dict[str, Any]:
    time.sleep(seconds)
    return {"slept": seconds}
