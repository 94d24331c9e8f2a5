"""Domain errors: raised by services, turned into HTTP answers once, by ``config.api.exception_handler``."""

from collections.abc import Mapping, Sequence


class DomainError(Exception):
    """A request the domain refuses. ``fields`` maps field names to messages, when a field is at fault."""

    status_code = 400
    default_code = "invalid"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fields: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.fields = {name: list(messages) for name, messages in (fields or {}).items()}


class NotAllowed(DomainError):
    status_code = 403
    default_code = "not_allowed"


class NotFound(DomainError):
    status_code = 404
    default_code = "not_found"


class Conflict(DomainError):
    """The request is valid, but the object's current state does not allow it."""

    status_code = 409
    default_code = "conflict"


class BrokerUnavailable(DomainError):
    """The task queue's broker cannot be reached, and the request needs it now: nothing was done, ask again later."""

    status_code = 503
    default_code = "broker_unavailable"
