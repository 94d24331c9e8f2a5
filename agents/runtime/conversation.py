"""What the model sees: the messages made of the run's committed steps, what it remembers of earlier runs, and
the tools it is offered.

The messages are the instructions, what the run remembers (a ``memory`` step, recorded once before the first model
call, so the conversation is the same however often it is rebuilt), the input (as the input guardrails left it),
then the model's turns and the tool results: a pure function of the steps (``messages``).
"""

import json
from collections.abc import Iterable
from typing import Any

from agents import replies
from agents.models import Run, RunStatus, Step, StepKind, StepStatus
from agents.runtime.session import Session
from audit.services import audit_record

SETTLED = (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.DENIED, StepStatus.COMPENSATED)
REMEMBERED = "What you remember of earlier runs, newest first (their input and your answer):\n"


def messages(spec: dict[str, Any], run_input: Any, steps: Iterable[Step]) -> list[dict[str, Any]]:
    """The messages for the model, made of the run's steps in seq order."""
    said: list[dict[str, Any]] = [{"role": "system", "content": spec["instructions"]}]
    asked = False  # the run's input is in
    for step in steps:
        if step.kind == StepKind.GUARDRAIL and "input" in step.detail:
            run_input = step.detail["input"]
        elif step.kind == StepKind.MEMORY and step.detail["runs"]:
            remembered = REMEMBERED + json.dumps(step.detail["runs"], ensure_ascii=False)
            said.append({"role": "system", "content": remembered, "meta": {"memory": step.detail["runs"]}})
        elif step.kind == StepKind.LLM_CALL:
            if not asked:
                said.append(_ask(run_input))
                asked = True
            said.append(
                replies.refusal_message(step.error) if step.status == StepStatus.FAILED else step.detail["message"]
            )
        elif step.kind == StepKind.TOOL_CALL and step.call_id and step.status in SETTLED:
            content = step.result if step.status == StepStatus.SUCCEEDED else {"error": step.error}
            said.append({"role": "tool", "tool_call_id": step.call_id, "content": json.dumps(content)})
    if not asked:
        said.append(_ask(run_input))
    return said


def _ask(run_input: Any) -> dict[str, Any]:
    return {"role": "user", "content": json.dumps(run_input, ensure_ascii=False)}


def recall(session: Session) -> None:
    """What the run remembers, by the agent's memory scope: the input (as its input guardrails left it) and the
    answer of the latest succeeded runs of the agent, of any version: none; those started by the same user or API
    client (``requester``); or all (``agent``)."""
    memory = session.ctx.spec.get("memory") or {}
    scope = memory.get("scope", "none")
    if scope == "none":
        return
    runs = _remembered(session.run, scope, memory.get("runs", 5))
    detail = {"scope": scope, "runs": runs, "text": f"remembered {len(runs)} earlier run(s)"}
    step = session.add_step(StepKind.MEMORY, StepStatus.SUCCEEDED, detail=detail)
    details = {"scope": scope, "runs": [entry["run"] for entry in runs]}
    audit_record(actor=session.actor, action="agent.memory.recalled", target=step, details=details)


def _remembered(run: Run, scope: str, count: int) -> list[dict[str, Any]]:
    earlier = Run.objects.filter(agent_id=run.agent_id, status=RunStatus.SUCCEEDED).exclude(pk=run.pk)
    if scope == "requester":
        earlier = earlier.filter(requested_by_id=run.requested_by_id)
    rows = list(earlier.order_by("-finished_at").values_list("pk", "input", "result", "finished_at")[:count])
    guarded = Step.objects.filter(
        run_id__in=[pk for pk, *_ in rows], kind=StepKind.GUARDRAIL, detail__has_key="input"
    ).values_list("run_id", "detail__input")
    masked = dict(guarded)
    return [
        {
            "run": str(pk),
            "finished_at": finished.isoformat() if finished else "",
            "input": masked.get(pk, asked),
            "answer": (result or {}).get("answer", ""),
        }
        for pk, asked, result, finished in rows
    ]


def tool_schemas(session: Session) -> list[dict[str, Any]]:
    """The granted tools that are available, as the model is shown them by the versions the agent version pins:
    made once per ``advance()``."""
    if session.schemas is None:
        pinned = session.ctx.tools
        session.schemas = [
            {"name": name, "description": pinned[name].description, "parameters": pinned[name].parameters}
            for name in sorted(session.tools)
            if name in pinned
        ]
    return session.schemas
