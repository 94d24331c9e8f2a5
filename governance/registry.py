"""The kinds of governed configuration, each declared once with its spec and the checks gating it.

An app registers its kinds in ``AppConfig.ready``; the versioning, review, release and rollback
machinery in ``governance.services`` then works for every kind alike.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from django.conf import settings

from config.errors import NotFound
from governance.checks import Check
from governance.models import Risk

Validator = Callable[[dict[str, Any]], dict[str, list[str]]]
# Names a place in a spec for people (``flow 'order', step 'ask_email'``); "" where the path says enough.
Locator = Callable[[Any, list[Any]], str]
# The versions of other governed objects a spec is approved with, resolved under the label it is submitted for:
# ``(pins, field errors)``, each pin ``{"kind", "slug", "version", "id", "checksum"}`` (an agent pins its tools).
Pinner = Callable[[dict[str, Any], str], tuple[list[dict[str, Any]], dict[str, list[str]]]]


@dataclass(frozen=True)
class GovernedKind:
    name: str  # stored in GovernedObject.kind: "style_guide"
    title: str  # for people: "style guide"
    schema: dict[str, Any]  # JSON Schema (draft 2020-12) of the spec
    validators: tuple[Validator, ...] = ()  # more field errors beyond the schema (a CEL condition that won't compile)
    checks: tuple[Check, ...] = ()  # run on submit; a failing one blocks approval
    review_risk: str = Risk.MEDIUM
    locate: Locator | None = None
    pins: Pinner | None = None
    _validator: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        jsonschema.Draft202012Validator.check_schema(self.schema)
        object.__setattr__(self, "_validator", jsonschema.Draft202012Validator(self.schema))

    @property
    def approvals_required(self) -> int:
        """Two distinct approvers for the kinds named in ``GOVERNANCE_TWO_APPROVER_KINDS``, else one."""
        return 2 if self.name in settings.GOVERNANCE_TWO_APPROVER_KINDS else 1

    def validate(self, spec: Any) -> dict[str, list[str]]:
        """Field errors of ``spec`` (paths like ``rules.banned[2].phrase``); empty when it is valid."""
        errors: dict[str, list[str]] = {}
        for error in sorted(self._validator.iter_errors(spec), key=lambda e: list(e.absolute_path)):
            where = self.locate(spec, list(error.absolute_path)) if self.locate else ""
            message = f"{where}: {error.message}" if where else error.message
            errors.setdefault(json_path(error.absolute_path), []).append(message)
        if not errors:
            for validator in self.validators:
                for path, messages in validator(spec).items():
                    errors.setdefault(path, []).extend(messages)
        return errors


def json_path(parts: Any) -> str:
    """``["rules", "banned", 2, "phrase"]`` → ``rules.banned[2].phrase`` (``""`` for the whole spec)."""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


_KINDS: dict[str, GovernedKind] = {}


def register(kind: GovernedKind) -> GovernedKind:
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> GovernedKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise NotFound(f"There is no kind of governed configuration called {name!r}.") from None


def all_kinds() -> list[GovernedKind]:
    return list(_KINDS.values())


@dataclass(frozen=True)
class ReviewPage:
    """How the console shows and decides review items of one kind, declared by the app that raises them (the
    governance app cannot import it). Every part is optional; without one the page is the generic one."""

    # Where the item is answered instead of being approved or rejected (a hand-over: its conversation).
    answered_at: Callable[[Any], str] | None = None
    # More of what is being decided, as safe HTML (a run's timeline so far).
    details: Callable[[Any], str] | None = None
    # The arguments an approver may change before approving, or None when nothing is editable.
    editable: Callable[[Any], dict[str, Any] | None] | None = None
    # Decides the item: ``decide(actor=, item=, decision=, digest=, comment=, arguments=)``.
    decide: Callable[..., Any] | None = None


_REVIEW_PAGES: dict[str, ReviewPage] = {}


def register_review_page(kind: str, page: ReviewPage) -> None:
    _REVIEW_PAGES[kind] = page


def review_page(kind: str) -> ReviewPage:
    return _REVIEW_PAGES.get(kind, ReviewPage())
