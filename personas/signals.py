"""Signals other apps listen to (webhooks), so that ``personas`` never imports them."""

from django.dispatch import Signal

# Sent inside the replying transaction with ``conversation`` and ``message`` when an Operator answers.
operator_replied = Signal()
