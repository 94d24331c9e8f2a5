"""Signals other apps listen to, so that ``agents`` never imports them (a persona waits on a run it started)."""

from django.dispatch import Signal

# Sent with ``run`` as a run's end (succeeded, failed, cancelled or timed out) is decided, before it is written.
# A receiver reads what it needs then and returns what it writes with the end (a callable without arguments, called
# inside the transaction that writes the run's end: written with it, or not at all), or ``None`` when it has
# nothing to write, so that a run nobody listens to ends in one statement (``agents.runtime.postgresql``).
run_finished = Signal()
