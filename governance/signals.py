"""Signals other apps listen to, so that ``governance`` never imports them."""

from django.dispatch import Signal

# Sent inside the expiring transaction with ``item``: a pending review item passed its due time (expiry denies).
review_item_expired = Signal()
