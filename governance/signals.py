"""Signals other apps listen to, so that ``governance`` never imports them."""

from django.dispatch import Signal

# Sent inside the expiring transaction with ``item``: a pending review item passed its due time (expiry denies).
review_item_expired = Signal()

# Sent inside the deciding transaction with ``item`` when a review item is finally approved or rejected.
review_item_decided = Signal()

# Sent inside the opening transaction with ``item`` when something is put in the review queue.
review_item_opened = Signal()

# Sent by ``manage.py bootstrap`` inside its transaction, once the admin account exists, with ``actor`` (the system
# actor ``bootstrap``): apps that seed a first run (the demo) do it here, idempotently, and each returns one line saying
# what it made, which the command prints.
bootstrapped = Signal()
