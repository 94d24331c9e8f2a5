"""Who is acting and under which correlation id, for the code that runs on their behalf.

The request middleware, management commands and Celery tasks set it; ``audit_record`` falls back on it
when the caller gives no correlation id, and signal handlers (logins, role changes) read the actor from it.
"""

import contextlib
import getpass
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Actor:
    """Who did something. Labels are copied into each event so it stays readable after deletions."""

    type: str
    id: str
    label: str

    @classmethod
    def for_user(cls, user: Any, *, via_token: bool = False) -> "Actor":
        if user is None or not getattr(user, "is_authenticated", False):
            return cls(type="anonymous", id="", label="anonymous")
        return cls(type="api_client" if via_token else "user", id=str(user.pk), label=user.get_username())

    @classmethod
    def system(cls, name: str) -> "Actor":
        return cls(type="system", id="", label=name)

    @classmethod
    def command_line(cls) -> "Actor":
        """A management command: attributed to the operating-system account that ran it."""
        try:
            who = getpass.getuser()
        except OSError:
            who = "unknown"
        return cls(type="system", id="", label=f"cli:{who}")


_actor: ContextVar[Actor | None] = ContextVar("steward_actor", default=None)
_request: ContextVar[Any] = ContextVar("steward_request", default=None)
_correlation_id: ContextVar[uuid.UUID | None] = ContextVar("steward_correlation_id", default=None)


def current_actor() -> Actor | None:
    """The actor set for this block, else the authenticated user of the request being handled."""
    actor = _actor.get()
    if actor is not None:
        return actor
    request = _request.get()
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return Actor.for_user(user, via_token=getattr(request, "auth", None) is not None)
    return None


def current_correlation_id() -> uuid.UUID:
    """The correlation id of the work in progress; a fresh one when nothing set it."""
    return _correlation_id.get() or uuid.uuid4()


@contextlib.contextmanager
def audit_context(
    *, actor: Actor | None = None, correlation_id: uuid.UUID | None = None, request: Any = None
) -> Iterator[uuid.UUID]:
    """Run a block as ``actor`` (or ``request``'s user) under ``correlation_id`` (inherited, else new)."""
    cid = correlation_id or _correlation_id.get() or uuid.uuid4()
    actor_token = _actor.set(actor if actor is not None else _actor.get())
    request_token = _request.set(request if request is not None else _request.get())
    cid_token = _correlation_id.set(cid)
    try:
        yield cid
    finally:
        _correlation_id.reset(cid_token)
        _request.reset(request_token)
        _actor.reset(actor_token)
