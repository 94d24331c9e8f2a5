"""Celery tasks for agent runs: thin, idempotent, by id; and the warm shutdown of the runs in hand.

On SIGTERM (what ``systemd`` and container runtimes send, often to the whole process group) a worker stops after
the step in hand: the call under way finishes and is recorded, then the run is handed back to the queue
(``runtime.stop_after_this_step``). Celery's own warm shutdown covers the main process (``worker_shutting_down``);
a prefork child, which gets the signal too when the group is signalled, takes it as the same request instead of
dying in the middle of a call.
"""

import os
import signal
import socket
from typing import Any

from billiard.process import current_process
from celery import shared_task
from celery.signals import worker_process_init, worker_shutting_down

from agents import runtime, services


@shared_task(bind=True)
def run_advance_task(self: Any, run_id: str) -> None:
    """Advance a run until it finishes or parks. Safe to deliver twice: the lease lets one worker in."""
    if _in_pool_child:
        # billiard sets its own SIGTERM handler (which ends the child at once) after the child's initializer ran.
        signal.signal(signal.SIGTERM, _child_sigterm)
    owner = f"{socket.gethostname()}:{os.getpid()}:{self.request.id}"
    runtime.advance(run_id, owner)


@shared_task
def runs_sweep_task() -> int:
    """Re-enqueue runs whose lease expired (a lost message or a dead worker) and queued runs nobody took."""
    return services.runs_sweep()


@shared_task
def run_compensate_task(run_id: str, actor_id: int) -> None:
    services.compensate(run_id, actor_id)


@worker_shutting_down.connect(dispatch_uid="agents.warm_shutdown")
def _warm_shutdown(**kwargs: Any) -> None:
    runtime.stop_after_this_step()


_in_pool_child = False  # a prefork pool's child process, where tasks run in the main thread


@worker_process_init.connect(dispatch_uid="agents.pool_child")
def _pool_child_started(**kwargs: Any) -> None:
    # Celery sends this in the worker's own process too when its pool is ``solo``: there its handler stays.
    global _in_pool_child
    _in_pool_child = current_process().name != "MainProcess"


def _child_sigterm(signum: int, frame: Any) -> None:
    """The first SIGTERM: stop after the step in hand. A second one (a cold shutdown): end now, as by default."""
    if runtime.stopping():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    runtime.stop_after_this_step()
