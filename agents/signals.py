"""Signals other apps listen to, so that ``agents`` never imports them (a persona waits on a run it started)."""

from django.dispatch import Signal

# Sent inside the finishing transaction with ``run`` when a run ends: succeeded, failed, cancelled or timed out.
run_finished = Signal()
