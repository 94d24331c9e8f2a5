"""Built-in detectors whose findings become the facts a guardrail policy condition sees about a text.

``detect`` finds personal data (emails, phone numbers, payment cards, IBANs: ``pii``) and prompt-injection phrasing
(``injection``), ``redact`` replaces what was found with placeholders, and ``facts`` summarises a text for policy
evaluation. Both kinds of finder read the text after ``normalise`` has undone the usual disguises (fullwidth and
look-alike letters, invisible characters, and for injection leetspeak, spelled-out letters and base64), and report
spans of the text as it was given.

Spans of different kinds never overlap: when they would, the more specific kind wins, in the order email, IBAN,
card, phone, injection. ``detect(text, kinds)`` always equals ``detect(text)`` filtered to ``kinds``, so asking
for phones alone never reports the digits of a card as a phone number.
"""

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from governance.detectors import injection, normalise, pii
from governance.detectors.findings import KINDS, PII_KINDS, Detection

__all__ = ["KINDS", "PII_KINDS", "Detection", "detect", "facts", "redact"]

_PLACEHOLDERS = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "card": "[CARD]",
    "iban": "[IBAN]",
    "injection": "[REMOVED]",
}

# Earlier wins when spans of different kinds would overlap.
_PRECEDENCE = ("email", "iban", "card", "phone", "injection")
_RANK = {kind: rank for rank, kind in enumerate(_PRECEDENCE)}
_KNOWN = frozenset(KINDS)
_NUMERIC = frozenset({"iban", "card", "phone"})
_ANY_DIGIT = re.compile(r"[0-9]")

_PII_FINDERS: dict[str, tuple[Callable[[str], Iterator[Detection]], ...]] = {
    "email": (pii.emails, pii.written_emails),
    "iban": (pii.ibans,),
    "card": (pii.cards,),
    "phone": (pii.phones,),
}


def _found(kind: str, view: normalise.View) -> Iterator[Detection]:
    """The detections of ``kind``, as spans of the original text."""
    if kind == "injection":
        yield from injection.find(view.source, view)
        return
    if kind in _NUMERIC and _ANY_DIGIT.search(view.text) is None:
        return
    for finder in _PII_FINDERS[kind]:
        for found in finder(view.text):
            start, end = view.source_span(found.start, found.end)
            yield Detection(kind, start, end, view.source[start:end])


def _kinds(kinds: Iterable[str]) -> frozenset[str]:
    chosen = frozenset((kinds,) if isinstance(kinds, str) else kinds)
    unknown = chosen - _KNOWN
    if unknown:
        raise ValueError(f"unknown detection kind(s): {', '.join(sorted(unknown))}; known: {', '.join(KINDS)}")
    return chosen


def detect(text: str, kinds: Iterable[str] = KINDS) -> list[Detection]:
    """The detections of the given kinds (a single kind name is accepted too) in ``text``, sorted by start.

    Kinds that outrank the requested ones are detected as well, so that the requested kinds never claim their
    spans, and then left out of the result. Raises ``ValueError`` for an unknown kind name.
    """
    wanted = _kinds(kinds)
    if not wanted:
        return []
    view = normalise.clean(text)
    # Accepted detections never overlap, so ordered by start they are ordered by end too.
    accepted: list[Detection] = []
    starts: list[int] = []
    for kind in _PRECEDENCE[: max(_RANK[kind] for kind in wanted) + 1]:
        for found in _found(kind, view):
            index = bisect_right(starts, found.start)
            if (index and accepted[index - 1].end > found.start) or (index < len(starts) and starts[index] < found.end):
                continue  # overlaps a detection of a more specific kind
            starts.insert(index, found.start)
            accepted.insert(index, found)
    return [found for found in accepted if found.kind in wanted]


def redact(text: str, detections: Sequence[Detection], kinds: Iterable[str] = PII_KINDS) -> str:
    """``text`` with each detected span of the given kinds replaced by its placeholder (``[EMAIL]``, ``[PHONE]``,
    ``[CARD]``, ``[IBAN]``, ``[REMOVED]`` for injection); everything else is kept as it was.

    ``detections`` must come from ``text`` (``ValueError`` otherwise); of overlapping spans only the first is
    replaced. Injection spans are kept unless ``"injection"`` is among ``kinds``.
    """
    chosen = _kinds(kinds)
    pieces: list[str] = []
    cursor = 0
    for found in sorted(detections, key=lambda found: (found.start, found.end)):
        if found.kind not in chosen:
            continue
        if not 0 <= found.start <= found.end <= len(text) or text[found.start : found.end] != found.text:
            raise ValueError(f"detection {found.as_dict()} does not match the text")
        if found.start < cursor:
            continue
        pieces.append(text[cursor : found.start])
        pieces.append(_PLACEHOLDERS[found.kind])
        cursor = found.end
    pieces.append(text[cursor:])
    return "".join(pieces)


def facts(text: str) -> dict[str, Any]:
    """The facts a guardrail policy condition sees about ``text``.

    ``pii`` counts detections per PII kind; ``pii_types`` lists the kinds found, in ``PII_KINDS`` order;
    ``injection_phrases`` holds the injection phrasings found, as read once the disguises were undone (lower case,
    runs of whitespace collapsed, ``base64: `` before a decoded one), in order of appearance and without repeats.
    """
    counts = dict.fromkeys(PII_KINDS, 0)
    phrases: list[str] = []
    for found in detect(text):
        if found.kind == "injection":
            phrase = found.signal or " ".join(found.text.lower().split())
            if phrase not in phrases:
                phrases.append(phrase)
        else:
            counts[found.kind] += 1
    return {
        "pii": counts,
        "pii_types": [kind for kind in PII_KINDS if counts[kind]],
        "pii_found": any(counts.values()),
        "injection": bool(phrases),
        "injection_phrases": phrases,
        "length": len(text),
    }
