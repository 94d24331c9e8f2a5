"""Celery tasks for agent runs: thin, idempotent, by id."""

import os
import socket
from typing import Any

from celery import shared_task

from agents import runtime, services


@shared_task(bind=True)
def run_advance_task(self: Any, run_id: str) -> None:
    """Advance a run until it finishes or parks. Safe to deliver twice: the lease lets one worker in."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{self.request.id}"
    runtime.advance(run_id, owner)


@shared_task
def runs_sweep_task() -> int:
    """Re-enqueue runs whose lease expired (a lost message or a dead worker) and queued runs nobody took."""
    return services.runs_sweep()


@shared_task
def run_compensate_task(run_id: str, actor_id: int) -> None:
    services.compensate(run_id, actor_id)
