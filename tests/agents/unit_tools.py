"""Tools for the in-process runtime tests (``unit.*``), and helpers to release agents that use them.

The write tools keep their effects in ``DemoAlert`` rows on the channel ``unit``, so a test can see what happened
(a call is made on a database connection of its own: the worker's, with no transaction open, or a helper thread's).
"""

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction

from agents import services
from agents.models import Run
from agents.tools import Compensation, tool
from demo.models import DemoAlert
from governance.demo import released
from tests.support import granted, tools_release

CHANNEL = "unit"


@tool("unit.echo", "Say the text back.")
def echo(text: str) -> dict[str, Any]:
    return {"echo": text}


@tool(
    "unit.note",
    "Write a note.",
    side_effect="write",
    risk="medium",
    compensation=Compensation("unit.unnote", {"note_id": "result.note_id", "why": "'undo ' + args.message"}),
)
def note(message: str) -> dict[str, Any]:
    return {"note_id": DemoAlert.objects.create(channel=CHANNEL, message=message).pk}


@tool("unit.unnote", "Strike a note out.", side_effect="write", risk="medium")
def unnote(note_id: int, why: str) -> dict[str, Any]:
    if not DemoAlert.objects.filter(pk=note_id, channel=CHANNEL).update(message=f"struck: {why}"):
        raise LookupError(f"there is no note {note_id}")
    return {"note_id": note_id, "struck": True}


@tool("unit.wire", "Send money: high risk, and it cannot be undone.", side_effect="write", risk="high")
def wire(amount: int) -> dict[str, Any]:
    return {"note_id": DemoAlert.objects.create(channel=CHANNEL, message=f"wired {amount}").pk}


@tool("unit.launch", "Launch something: critical.", side_effect="write", risk="critical")
def launch(target: str) -> dict[str, Any]:
    return {"launched": target}


@tool("unit.boom", "Always fails.")
def boom() -> dict[str, Any]:
    raise RuntimeError("the boom tool exploded")


@tool("unit.slow", "Takes its time.", timeout=0.2)
def slow(seconds: float) -> dict[str, Any]:
    time.sleep(seconds)
    return {"slept": seconds}


@tool("unit.not_json", "Returns something that is not JSON.")
def not_json() -> Any:
    return {"values": {1, 2}}


def notes() -> list[str]:
    return list(DemoAlert.objects.filter(channel=CHANNEL).order_by("pk").values_list("message", flat=True))


def spec(
    script: list[dict[str, Any]] | None,
    *,
    grants: list[dict[str, Any]] | None = None,
    autonomy: str = "autonomous",
    budgets: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    escalation: dict[str, Any] | None = None,
    memory: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An agent spec: the scripted model unless ``model`` is given; every tool the script calls is granted."""
    called = [entry["call"] for entry in script or [] if "call" in entry]
    result: dict[str, Any] = {
        "instructions": "You are a unit-test agent.",
        "model": model or {"provider": "scripted", "name": "unit-script"},
        "autonomy": autonomy,
        "budgets": budgets or {"steps": 20},
        "grants": grants if grants is not None else [{"tool": name} for name in dict.fromkeys(called)],
    }
    if script is not None:
        result["script"] = script
    if escalation is not None:
        result["escalation"] = escalation
    if memory is not None:
        result["memory"] = memory
    return result


def release_agent(editor: User, approver: User, slug: str, agent_spec: dict[str, Any]) -> None:
    """Draft, submit, approve and release ``agent_spec`` under ``production`` (committed at once), with the tools it
    grants."""
    tools_release(approver, names=granted(agent_spec))
    released(editor, [approver], "agent", slug, slug, agent_spec)


def start_run(
    capture: Callable[..., AbstractContextManager[list[Callable[[], Any]]]],
    user: User,
    slug: str,
    run_input: dict[str, Any],
) -> Run:
    """Start a run as ``user`` and check it is enqueued exactly once after commit, without sending it anywhere:
    the test drives the run itself with ``runtime.advance``."""
    with transaction.atomic():
        with capture(execute=False) as enqueued:
            run, created = services.run_start(actor=user, agent=slug, input=run_input)
        assert created
        # What runs after the commit: the run's enqueue, and a checkpoint's publication when one fell due.
        sends = [call for call in enqueued if getattr(call, "__qualname__", "").startswith("enqueue_after_commit")]
        assert len(sends) == 1
        # Drop the enqueue callback before the commit runs it: no Celery worker should pick this run up.
        connection.run_on_commit.clear()
    return run
