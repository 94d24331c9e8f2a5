"""Agents: every state change, each in one transaction with its audit event.

Starting, cancelling and compensating runs (``runs``, ``compensation``), deciding tool approvals and budget
overruns (``approvals``), syncing the tools registered in code and saving HTTP tools (``tools``). The runtime
(``agents.runtime``) advances runs in Celery tasks (``agents.tasks``); these services send that work once their
transaction commits, by the task's name: the tasks import the services, never the reverse.
"""

from agents.services.approvals import RUN_APPROVALS, approval_decide, approval_step
from agents.services.common import AGENT_KIND, STEP_SUBJECT
from agents.services.compensation import compensate, run_compensate
from agents.services.runs import run_cancel, run_cancel_handoff, run_start, run_start_handoff, runs_sweep
from agents.services.tools import FORM_FIELDS, http_tool_save, tools_sync

__all__ = [
    "AGENT_KIND",
    "FORM_FIELDS",
    "RUN_APPROVALS",
    "STEP_SUBJECT",
    "approval_decide",
    "approval_step",
    "compensate",
    "http_tool_save",
    "run_cancel",
    "run_cancel_handoff",
    "run_compensate",
    "run_start",
    "run_start_handoff",
    "runs_sweep",
    "tools_sync",
]
