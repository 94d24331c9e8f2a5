"""The vocabulary of the detectors: the kinds they find and what a finding is."""

from dataclasses import dataclass, field
from typing import Any

PII_KINDS = ("email", "phone", "card", "iban")
KINDS = (*PII_KINDS, "injection")


@dataclass(frozen=True)
class Detection:
    """One finding: ``text[start:end] == self.text`` in the text that was searched.

    ``signal`` is what was recognised once the disguises were undone (for an injection, the phrase as read: lower
    case, whitespace collapsed, decoded from base64); it does not take part in comparisons.
    """

    kind: str
    start: int
    end: int
    text: str
    signal: str = field(default="", compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": self.start, "end": self.end, "text": self.text}
