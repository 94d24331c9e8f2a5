"""Agents in the console: tools, agent definitions (the shared governed pages), and runs with their timeline.

A run's page shows each step with its duration, tokens, cost, arguments, result, and the approvals with who
decided; Operators cancel and compensate from it, through the same services as the API. A live run's page
refreshes itself until the run ends.
"""

from agents.admin import definitions, runs, tools

__all__ = ["definitions", "runs", "tools"]
