"""What the agents' services share: the kind of agent definitions, permission checks and enqueueing a run."""

from django.contrib.auth.models import User

from agents.models import Run, Step
from agents.runtime.lease import ADVANCE_TASK
from config import enqueue
from config.errors import NotAllowed

AGENT_KIND = "agent"
STEP_SUBJECT = Step._meta.label_lower


def enqueue_run(run: Run) -> None:
    """Advance the run once the transaction commits. With the broker down the run stays queued, committed, and the
    sweeper (``runs_sweep``) dispatches it once it has waited a lease."""
    enqueue.enqueue_after_commit(ADVANCE_TASK, str(run.pk), later="the runs sweeper")


def require(user: User, permission: str, doing: str) -> None:
    if not user.has_perm(permission):
        raise NotAllowed(f"You may not {doing}: it needs the permission {permission}.")
