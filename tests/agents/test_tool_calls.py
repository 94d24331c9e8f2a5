"""Tool calls with a time limit (``agents.tools.call_with_timeout``): made in the worker's own thread, interrupted
when their time is up; made in a helper thread where a timer signal cannot be used."""

import contextvars
import signal
import threading
import time
from typing import Any

import pytest
from django.db import transaction

from agents.tools import ToolFailure, call_with_timeout

mood: contextvars.ContextVar[str] = contextvars.ContextVar("mood", default="none")


def in_a_thread(job: Any) -> Any:
    answer: dict[str, Any] = {}

    def run() -> None:
        try:
            answer["value"] = job()
        except ToolFailure as failure:
            answer["failure"] = str(failure)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return answer


def test_a_call_in_the_main_thread_is_interrupted_when_its_time_is_up() -> None:
    finished = threading.Event()

    def dawdle() -> None:
        time.sleep(1.0)
        finished.set()

    with pytest.raises(ToolFailure, match=r"^timed out after 0\.1 s$"):
        call_with_timeout(dawdle, {}, 0.1)
    # Abandoned in a helper thread, the call would finish on its own; interrupted, it never does.
    assert not finished.wait(1.5)


def test_a_call_sees_none_of_the_callers_context_and_leaves_the_timer_as_it_was() -> None:
    token = mood.set("collecting")
    try:
        assert call_with_timeout(lambda: {"mood": mood.get()}, {}, 1.0) == {"mood": "none"}
    finally:
        mood.reset(token)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL


def test_away_from_the_main_thread_a_call_runs_in_a_helper_thread_and_times_out_too() -> None:
    where: list[str] = []

    def note_thread(seconds: float) -> dict[str, Any]:
        where.append(threading.current_thread().name)
        time.sleep(seconds)
        return {"slept": seconds}

    assert in_a_thread(lambda: call_with_timeout(note_thread, {"seconds": 0.0}, 1.0)) == {"value": {"slept": 0.0}}
    assert in_a_thread(lambda: call_with_timeout(note_thread, {"seconds": 1.0}, 0.1)) == {
        "failure": "timed out after 0.1 s"
    }
    assert where == ["tool-call", "tool-call"]


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_a_call_runs_in_a_helper_thread() -> None:
    with transaction.atomic():
        name = call_with_timeout(lambda: threading.current_thread().name, {}, 1.0)
    assert name == "tool-call"
    assert call_with_timeout(lambda: threading.current_thread().name, {}, 1.0) == "MainThread"


def test_a_tools_error_is_its_failure_but_an_interruption_of_the_worker_is_not() -> None:
    def boom() -> None:
        raise RuntimeError("kaput")

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(ToolFailure, match=r"^RuntimeError: kaput$"):
        call_with_timeout(boom, {}, 1.0)
    with pytest.raises(KeyboardInterrupt):
        call_with_timeout(interrupted, {}, 1.0)
