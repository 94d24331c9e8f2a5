"""The run benchmark's tool and its baseline task (see ``bench.runs``).

``bench.noop`` is a real ``@tool``: registered when this module is imported (``bench.runs`` adds it to
``AGENTS_TOOL_MODULES`` for its worker and imports it itself before migrating, so the tool is synced to the
``Tool`` table). It returns its argument and touches nothing.

``bare_steps_task`` is the baseline: a plain Celery task that does what a benchmark run does, without the runtime.
For the same script, it calls the same scripted provider (``agents.providers.ScriptedProvider``, with the
conversation built up as the runtime builds it) and the same no-op function, in the same order: model, tool,
model, tool, ..., model (the answer). Each of those steps is followed by one insert, in its own transaction, into
``demo.models.DemoAlert``. So a bare task has the runs' number of steps (``2 * calls + 1``), the model stub and
the tool, and one committed row per step; what it lacks is the orchestration: leases, step rows, the conversation
rebuilt from the database, grants, schemas, guardrails, budgets, the audit trail, the tool's thread and timeout.

``first_messages``, ``model_turn`` and ``tool_turn`` are that loop's steps, shared by the bare task and by the
peers (``bench/peers/``), so that every contender does the same work for its model and its tool.
"""

import json
from typing import Any

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from agents.providers import ScriptedProvider
from agents.tools import registered, tool
from demo.models import DemoAlert

TOOL = "bench.noop"
INSTRUCTIONS = "You are the run benchmark's agent: call the no-op tool as the script says, then answer."
MODEL: dict[str, Any] = {"provider": "scripted", "name": "bench-script"}
_provider = ScriptedProvider()


@tool(TOOL, "Does nothing and answers at once: the run benchmark's tool.")
def noop(n: int) -> dict[str, Any]:
    return {"n": n}


# What the runtime passes the model as the agent's tools (it reads them from the Tool table at every call).
TOOL_SCHEMA: list[dict[str, Any]] = [
    {"name": spec.name, "description": spec.description, "parameters": spec.parameters}
    for spec in (registered()[TOOL],)
]


def script(calls: int) -> list[dict[str, Any]]:
    """The scripted model: ``calls`` calls of ``bench.noop`` (``n`` = 1, 2, ...), then an answer."""
    entries: list[dict[str, Any]] = [{"call": TOOL, "arguments": {"n": str(n)}} for n in range(1, calls + 1)]
    entries.append({"answer": "Called the no-op tool {{ size(results) }} times; the last said {{ last.n }}."})
    return entries


def expected_answer(calls: int) -> str:
    return f"Called the no-op tool {calls} times; the last said {calls}."


def first_messages(run_input: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation as the runtime starts it: the instructions, then the run's input."""
    return [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": json.dumps(run_input, ensure_ascii=False)},
    ]


def model_turn(messages: list[dict[str, Any]], entries: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Any]]:
    """One call of the scripted model: its message, and its tool calls as plain data (id, name, arguments)."""
    completion = _provider.complete(model=MODEL, messages=messages, tools=TOOL_SCHEMA, timeout=60.0, script=entries)
    calls = [{"id": call.id, "name": call.name, "arguments": call.arguments} for call in completion.tool_calls]
    return completion.message, calls


def tool_turn(call: dict[str, Any]) -> dict[str, Any]:
    """One call of the no-op tool: the tool message the model reads next."""
    result = noop(**(call["arguments"] or {}))
    return {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)}


def check_answer(message: dict[str, Any], calls: int) -> None:
    """The model's last message is the script's answer."""
    if message.get("content") != expected_answer(calls):
        raise RuntimeError(f"the scripted model answered {message.get('content')!r}")


def _insert(channel: str, index: int, step: int, started: str) -> None:
    with transaction.atomic():
        DemoAlert.objects.create(channel=channel, message=f"{index} {step} {started}")


@shared_task
def bare_steps_task(channel: str, index: int, calls: int, run_input: dict[str, Any]) -> None:
    """The baseline: the runs' steps with none of the runtime (see the module docstring).

    Every row is ``DemoAlert(channel=channel, message="<index> <step> <started>")``, ``started`` being when the task
    began (ISO 8601): the benchmark reads each task's wall time as the last row's ``created_at`` minus ``started``.
    """
    started = timezone.now().isoformat()
    entries = script(calls)
    messages = first_messages(run_input)
    step = 0
    while True:
        message, tool_calls = model_turn(messages, entries)
        messages.append(message)
        step += 1
        _insert(channel, index, step, started)
        if not tool_calls:
            check_answer(message, calls)
            return
        for call in tool_calls:
            messages.append(tool_turn(call))
            step += 1
            _insert(channel, index, step, started)
