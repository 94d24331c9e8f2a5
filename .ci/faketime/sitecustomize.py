"""Loaded by every Python process of CI's run a year ahead (``.ci/run`` puts this directory on PYTHONPATH).

libfaketime 0.9.10 (Debian 12) and Python 3.11 disagree about two clocks. With CLOCK_MONOTONIC faked, a timed lock
wait (``Event.wait``, ``Thread.join``, ``Lock.acquire(timeout=)``) passes a faked deadline to ``sem_clockwait``,
which libfaketime does not intercept: the wait lasts a year. So the run leaves CLOCK_MONOTONIC alone
(``FAKETIME_DONT_FAKE_MONOTONIC=1``); then ``time.sleep``, an absolute ``clock_nanosleep`` on that clock, is
shifted by libfaketime all the same and fails with EINVAL. Sleeping as a timed wait on a lock nobody releases keeps
the same duration on the real monotonic clock. Nothing else changes: the wall clock (``time.time``, ``datetime``)
is the year-ahead one the run is about.
"""

import os

if os.environ.get("FAKETIME") and os.environ.get("FAKETIME_DONT_FAKE_MONOTONIC") == "1":
    import threading
    import time
    from typing import SupportsIndex

    def _sleep(seconds: float | SupportsIndex) -> None:
        duration = float(seconds)
        if duration < 0:
            raise ValueError("sleep length must be non-negative")
        threading.Event().wait(duration)

    time.sleep = _sleep
