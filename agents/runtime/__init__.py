"""The agent runtime: advances a run one committed step at a time, under a lease (DESIGN.md's reliability rules).

``advance(run_id, owner)`` is the one entry point, what the Celery task calls and the tests call. The modules, in
the order of the loop:

- ``lease``: claiming a run, the heartbeat that keeps the lease during a slow call, the dead letter;
- ``session``: what one ``advance()`` holds in memory (the run, its steps, what its version pins), and the one
  transaction in which each step's decisions are written, guarded by the lease;
- ``transitions``: the run's state machine, every change of status;
- ``loop``: deciding, committing, performing, recording;
- ``checkpoints``: the ``input`` and ``output`` guardrails;
- ``conversation``: what the model sees; ``model_call``: calling it and recording its reply;
- ``budget``: steps, tokens, cost and wall time;
- ``authorize``: a proposed tool call's verdict, from small checks; ``facts``: what CEL conditions see;
- ``approvals``: parking a run for a person; ``tool_call``: starting, performing, recording and recovering calls.

What services use besides: ``end_now`` and ``roll_back`` (a run no worker holds), ``change`` (its status),
``execute`` (a compensation's tool call), ``append_step``, ``context_of`` and ``constraint_problem`` (an approval
with edited arguments), ``compensation_facts``.
"""

from agents.runtime.authorize import constraint_problem
from agents.runtime.facts import call as call_facts
from agents.runtime.facts import compensation as compensation_facts
from agents.runtime.loop import advance, stop_after_this_step, stopping
from agents.runtime.session import append_step, context_of, run_actor
from agents.runtime.tool_call import execute
from agents.runtime.transitions import change, end_now, roll_back

__all__ = [
    "advance",
    "append_step",
    "call_facts",
    "change",
    "compensation_facts",
    "constraint_problem",
    "context_of",
    "end_now",
    "execute",
    "roll_back",
    "run_actor",
    "stop_after_this_step",
    "stopping",
]
