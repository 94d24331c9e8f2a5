"""The facts CEL conditions are evaluated on, in one place: grant constraints and approval conditions, the
``action`` guardrails, the ``input`` and ``output`` guardrails, and compensations. docs/policies.md names them."""

import json
from typing import Any

from agents.models import Run, Step
from agents.tool_versions import ToolDefinition


def call(run: Run, tool: ToolDefinition, arguments: dict[str, Any]) -> dict[str, Any]:
    """A tool call, for the grant's constraints and approval condition."""
    return {"args": arguments, "input": run.input, "tool": tool.name, "risk": tool.risk, "agent": run.agent.slug}


def action(
    run: Run, tool: ToolDefinition, arguments: dict[str, Any], autonomy: str, budgets: dict[str, Any]
) -> dict[str, Any]:
    """A tool call, for the ``action`` guardrails: the call, the agent's autonomy and what its budgets have left."""
    budget = {
        "steps_used": run.steps_used,
        "steps_limit": budgets["steps"],
        "tokens_used": run.tokens_used,
        "tokens_limit": budgets.get("tokens", 0),
        "cost_used": float(run.cost_used),
        "cost_limit": budgets.get("cost", 0),
    }
    return {
        "tool": tool.name,
        "risk": tool.risk,
        "side_effect": tool.side_effect,
        "args": arguments,
        "agent": run.agent.slug,
        "autonomy": autonomy,
        "budget": budget,
        "text": json.dumps(arguments, ensure_ascii=False),
    }


def text(run: Run, text: str) -> dict[str, Any]:
    """A run's input or answer, for the ``input`` and ``output`` guardrails."""
    return {"text": text, "channel": "run", "persona": "", "agent": run.agent.slug}


def compensation(step: Step) -> dict[str, Any]:
    """A write being undone, for its compensation's argument expressions."""
    return {"args": step.arguments or {}, "result": step.result}
