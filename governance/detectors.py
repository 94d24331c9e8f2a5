"""Built-in detectors whose findings become the facts a guardrail policy condition sees about a text.

``detect`` finds personal data (emails, phone numbers, payment cards, IBANs) and prompt-injection phrasing,
``redact`` replaces what was found with placeholders, and ``facts`` summarises a text for policy evaluation.

Every detector is a precompiled regular expression that finds candidates, followed (for the numeric kinds) by a
plain-Python validation: the Luhn check for cards, ISO 13616 mod-97 plus the registered length for IBANs, and a
small set of shape rules for phone numbers that keeps dates, times, prices, IP addresses, ISBNs and order numbers
out. The detectors prefer missing an oddly written number over flagging ordinary text: a policy that blocks or
escalates on these facts should not fire on a customer quoting a date or a price.

Spans of different kinds never overlap: when they would, the more specific kind wins, in the order email, IBAN,
card, phone, injection. ``detect(text, kinds)`` always equals ``detect(text)`` filtered to ``kinds``, so asking
for phones alone never reports the digits of a card as a phone number.
"""

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

PII_KINDS = ("email", "phone", "card", "iban")
KINDS = (*PII_KINDS, "injection")

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


@dataclass(frozen=True)
class Detection:
    """One finding: ``text[start:end] == self.text``."""

    kind: str
    start: int
    end: int
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": self.start, "end": self.end, "text": self.text}


# --- email -----------------------------------------------------------------------------------------------------

# An email is found from its "@": the local part is read leftwards from it (at most 64 characters, RFC 5321), the
# domain is matched rightwards, so the cost follows the number of "@" rather than the length of the text.
_LOCAL_MAX = 64
_LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.%+-")
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*")  # dots only between characters
_EMAIL_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"  # one or more domain labels, each followed by a dot
    r"[A-Za-z]{2,63}"  # alphabetic top-level domain
    r"(?![\w-])"
)
_NOT_BEFORE_LOCAL = re.compile(r"[\w.%+-]")  # the local part is not the tail of something longer


def _emails(text: str) -> Iterator[Detection]:
    pos = 0
    while (at := text.find("@", pos)) != -1:
        start = at
        while start > pos and at - start < _LOCAL_MAX and text[start - 1] in _LOCAL_CHARS:
            start -= 1
        domain = _EMAIL_DOMAIN.match(text, at + 1) if start < at else None
        if (
            domain is not None
            and _EMAIL_LOCAL.fullmatch(text, start, at) is not None
            and not (start and _NOT_BEFORE_LOCAL.match(text, start - 1))
        ):
            yield Detection("email", start, domain.end(), text[start : domain.end()])
            pos = domain.end()
        else:
            pos = at + 1


# --- numbers: shared boundaries --------------------------------------------------------------------------------

# A numeric candidate must be the whole numeric run it sits in: not glued to a word, a handle or an email, not the
# continuation of digits before it ("1,299", "24.11.2026", "10:30") and not followed by more of them.
_RUN_START = r"(?<![\w+@)])(?<![0-9)][ .,:/-])"
_RUN_END = r"(?![\w@])(?![ .,:/-]?[0-9])"

# Every card or phone candidate lies in a run of digits and separators, preceded by at most "+ (" (three
# characters). These find the runs with at least as many digits as a card (13) or a phone number (7) has.
_CARD_RUN = re.compile(r"[0-9](?:[ ().-]*[0-9]){12,}[ ().-]*")
_PHONE_RUN = re.compile(r"[0-9](?:[ ().-]*[0-9]){6,}[ ().-]*")
_BEFORE_RUN = 3


def _around_numbers(pattern: re.Pattern[str], runs: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)``, searching only around the ``runs`` (much faster than letting the pattern's
    leading lookbehinds run at every position). Lookbehinds still see the whole text; the two characters after a
    run are enough for the lookaheads of ``_RUN_END``."""
    previous_end = 0
    for run in runs.finditer(text):
        pos, endpos = max(run.start() - _BEFORE_RUN, previous_end), min(run.end() + 2, len(text))
        previous_end = run.end()
        while (match := pattern.search(text, pos, endpos)) is not None and match.start() < run.end():
            yield match
            pos = match.end()


# --- card ------------------------------------------------------------------------------------------------------

_CARD = re.compile(_RUN_START + r"[0-9](?:[ -]?[0-9]){12,18}" + _RUN_END)
_CARD_GROUPINGS = ((4, 6, 5), (4, 6, 4))  # American Express, Diners Club; otherwise groups of four
_DIGITS = re.compile(r"[0-9]+")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card_grouping_ok(candidate: str) -> bool:
    separators = set(candidate) - set("0123456789")
    if not separators:
        return True
    if len(separators) > 1:
        return False
    lengths = tuple(len(group) for group in _DIGITS.findall(candidate))
    if lengths in _CARD_GROUPINGS:
        return True
    return len(lengths) >= 3 and all(length == 4 for length in lengths[:-1]) and 1 <= lengths[-1] <= 4


def _cards(text: str) -> Iterator[Detection]:
    for match in _around_numbers(_CARD, _CARD_RUN, text):
        candidate = match.group()
        digits = candidate.replace(" ", "").replace("-", "")
        if _card_grouping_ok(candidate) and _luhn_ok(digits):
            yield Detection("card", match.start(), match.end(), candidate)


# --- IBAN ------------------------------------------------------------------------------------------------------

# Lengths from the SWIFT IBAN registry (ISO 13616). A country code missing here is not an IBAN country.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

# Matches from the first check digit (a pattern that starts with a digit is searched much faster than one that
# starts with a lookbehind or a letter); the country code is checked by the lookbehind and is match.start() - 2.
_IBAN = re.compile(
    r"[0-9](?<=(?<!\w)[A-Za-z]{2}[0-9])[0-9]"
    r"(?:[A-Za-z0-9]{11,30}"  # compact
    r"|(?: [A-Za-z0-9]{4}){2,7}(?: [A-Za-z0-9]{1,4})?)"  # or in groups of four, single spaces between
    r"(?!\w)"
)


def _iban_ok(compact: str) -> bool:
    if not "02" <= compact[2:4] <= "98":
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _ibans(text: str) -> Iterator[Detection]:
    for match in _IBAN.finditer(text):
        start = match.start() - 2
        candidate = text[start : match.end()]
        length = _IBAN_LENGTHS.get(candidate[:2].upper())
        if length is None:
            continue
        # The grouped form may have run on into a following word of four letters or fewer; cut at the registered
        # length, which has to fall at the end of a group.
        end, seen = 0, 0
        while seen < length and end < len(candidate):
            seen += candidate[end] != " "
            end += 1
        if seen < length or candidate[end : end + 1] not in ("", " "):
            continue
        if _iban_ok(candidate[:end].replace(" ", "").upper()):
            yield Detection("iban", start, start + end, candidate[:end])


# --- phone -----------------------------------------------------------------------------------------------------

# Candidates: an optional "+", then digit groups joined by one space, dot or dash, with at most one group in
# parentheses; _is_phone decides which shapes are phone numbers.
_PHONE = re.compile(
    _RUN_START + r"(?:\+ ?)?\(?[0-9]+(?:(?:[ .-]|\)[ .-]?|[ .-]?\()[0-9]+)*" + _RUN_END,
)
_PAREN_GROUP = re.compile(r"\(([0-9]+)\)")


def _looks_like_date(lengths: list[int], groups: list[str]) -> bool:
    if len(groups) < 3:
        return False
    first, second, third = (int(group) for group in groups[:3])
    if lengths[:3] == [4, 2, 2]:  # 2026-11-24
        return 1 <= second <= 12 and 1 <= third <= 31
    if lengths[:3] == [2, 2, 4]:  # 24-11-2026, 11-24-2026
        return 1 <= first <= 31 and 1 <= second <= 31 and 1900 <= third <= 2199
    return False


def _is_phone(candidate: str) -> bool:
    international = candidate.startswith("+")
    body = candidate.lstrip("+ ")
    runs = list(_DIGITS.finditer(body))
    groups = [run.group() for run in runs]
    lengths = [len(group) for group in groups]
    digits = "".join(groups)
    separators = [body[before.end() : after.start()] for before, after in pairwise(runs)]

    paren_index = None
    if "(" in body or ")" in body:
        paren = _PAREN_GROUP.search(body)
        if paren is None or body.count("(") != 1 or body.count(")") != 1:
            return False
        paren_index = next(index for index, run in enumerate(runs) if run.start() == paren.start(1))

    if international:  # +44 20 7946 0958, +1 (415) 555-2671, +442079460958
        if not 7 <= len(digits) <= 15:
            return False
        return len(groups) == 1 or (lengths[0] <= 3 and lengths[-1] >= 2 and paren_index in (None, 1))

    if not 9 <= len(digits) <= 15:
        return False
    if paren_index is not None:  # (415) 555-2671, (020) 7946 0958
        return (
            paren_index == 0
            and len(groups) >= 2
            and 2 <= lengths[0] <= 5
            and all(length >= 2 for length in lengths[1:])
            and len(set(separators[1:])) <= 1
        )
    if len(groups) == 1:  # 02079460958: unseparated national numbers need the trunk prefix 0
        return digits[0] == "0" and 10 <= len(digits) <= 12
    if len(set(separators)) != 1 or _looks_like_date(lengths, groups):
        return False
    if digits[0] == "0":  # 020 7946 0958, 06 12 34 56 78, 0800-123-4567
        return 2 <= lengths[0] <= 5 and all(2 <= length <= 8 for length in lengths[1:])
    # Without a trunk prefix only the North American shape: 415-555-2671, 1 415 555 2671.
    if lengths == [1, 3, 3, 4] and groups[0] == "1":
        lengths = lengths[1:]
    return lengths == [3, 3, 4]


def _phones(text: str) -> Iterator[Detection]:
    for match in _around_numbers(_PHONE, _PHONE_RUN, text):
        start, candidate = match.start(), match.group()
        if candidate.startswith("(") and ")" not in candidate:  # "(020 7946 0958)": the bracket is prose
            start, candidate = start + 1, candidate[1:]
        if _is_phone(candidate):
            yield Detection("phone", start, start + len(candidate), candidate)


# --- injection -------------------------------------------------------------------------------------------------

_EARLIER = r"(?:previous|prior|above|earlier|preceding)"
_YOU_ARE = r"you(?:\s+are|'re|\u2019re)"

# (name, pattern), matched against the lower-cased text, so patterns are written in lower case. Each starts with
# a literal (which the regex engine finds fast) and gets a word boundary before it when that literal is a word.
# Where two matches overlap, the earlier (then the longer) is kept. Add new phrasings here.
_INJECTION_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        "ignore_previous",
        rf"ignore\s+(?:all\s+)?(?:of\s+)?(?:the\s+|your\s+|my\s+|any\s+)?{_EARLIER}\s+"
        r"(?:instructions?|prompts?|rules|directions|directives|commands|guidelines)\b",
    ),
    (
        "disregard_previous",
        rf"disregard\s+(?:all\s+)?(?:of\s+)?(?:the\s+|your\s+|my\s+|any\s+)?{_EARLIER}\s+"
        r"(?:instructions?|prompts?|rules|directions|directives|commands|guidelines)\b",
    ),
    ("forget_instructions", rf"forget\s+(?:all\s+)?(?:of\s+)?(?:your\s+|the\s+)?(?:{_EARLIER}\s+)?instructions\b"),
    (
        "you_are_now",  # but not "you are now connected to an agent", "... a member", "... in the queue"
        rf"{_YOU_ARE}\s+now\s+(?:"
        r"dan\b|jailbroken\b|unrestricted\b|unfiltered\b|uncensored\b"
        r"|no\s+longer\s+(?:bound|restricted|limited)\b"
        r"|free\s+(?:from|of)\s+(?:all\s+)?(?:your\s+)?(?:rules|restrictions|guidelines|constraints|filters)\b"
        r"|in\s+(?:developer|dev|dan|god|jailbreak|jailbroken|unrestricted|admin|sudo|root|debug)\s+mode\b"
        r"|an?\s+(?:unrestricted|unfiltered|uncensored|jailbroken|evil|rogue|amoral)\b"
        r"|an?\s+(?:\w+\s+)?(?:ai|chatbot|llm|language\s+model)\b"
        r")",
    ),
    ("pretend", rf"pretend\s+(?:that\s+)?(?:{_YOU_ARE}|to\s+be)\b"),
    (
        "act_as_unrestricted",
        r"act\s+as\s+(?:if\s+you\s+(?:are|were)\s+)?(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|jailbroken)\b",
    ),
    (
        "reveal_system_prompt",
        r"(?:reveal|show|print|display|output|repeat|leak|dump)\s+(?:me\s+)?(?:(?:your|the)\s+)?"
        r"(?:full\s+|entire\s+|hidden\s+|original\s+|initial\s+)?system\s+prompt\b",
    ),
    (
        "ask_system_prompt",  # but not "what are your instructions for returning an item?"
        r"what(?:\s+(?:is|are|was|were)|'s|\u2019s)\s+your\s+"
        r"(?:system\s+prompt|(?:initial\s+|original\s+|system\s+|hidden\s+)?instructions)\b"
        r"(?!\s+(?:for|on|about|regarding|to|when|if)\b)",
    ),
    ("developer_mode", r"(?:developer|dan)\s+mode\b"),
    ("jailbreak", r"jailbr(?:eak(?:s|ed|ing)?|oken)\b"),
    ("do_anything_now", r"do\s+anything\s+now\b"),
    (
        "override_safety",
        r"override\s+(?:(?:your|the|all|any)\s+)?(?:safety|guardrails?|rules|instructions|restrictions"
        r"|content\s+(?:policy|filters?)|programming)\b",
    ),
    ("system_prompt_label", r"system\s+prompt\s*:"),
    (
        "role_tag",
        r"<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|begin_of_text|eot_id|start_header_id"
        r"|end_header_id)\|>|\[/?inst\]|<</?sys>>",
    ),
)

_INJECTION_LOWER = tuple(re.compile(pattern) for _, pattern in _INJECTION_PATTERNS)
# For the rare text whose lower-casing changes its length (so positions would no longer line up).
_INJECTION_IGNORECASE = tuple(re.compile(pattern, re.IGNORECASE) for _, pattern in _INJECTION_PATTERNS)
_WORD_CHAR = re.compile(r"\w")


def _injections(text: str) -> Iterator[Detection]:
    lowered = text.lower()
    haystack, patterns = (lowered, _INJECTION_LOWER) if len(lowered) == len(text) else (text, _INJECTION_IGNORECASE)
    spans: list[tuple[int, int]] = []
    for pattern in patterns:
        pos = 0
        while (match := pattern.search(haystack, pos)) is not None:
            start = match.start()
            if start and _WORD_CHAR.match(haystack, start) and _WORD_CHAR.match(haystack, start - 1):
                pos = start + 1  # inside a word: "undo anything now" is not "do anything now"
                continue
            spans.append((start, match.end()))
            pos = match.end()
    end = 0
    for start, stop in sorted(spans, key=lambda span: (span[0], -span[1])):
        if start >= end:
            yield Detection("injection", start, stop, text[start:stop])
            end = stop


# --- public API ------------------------------------------------------------------------------------------------

_FINDERS: dict[str, Callable[[str], Iterator[Detection]]] = {
    "email": _emails,
    "iban": _ibans,
    "card": _cards,
    "phone": _phones,
    "injection": _injections,
}
_NUMERIC = frozenset({"iban", "card", "phone"})
_ANY_DIGIT = re.compile(r"[0-9]")


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
    has_digits = _ANY_DIGIT.search(text) is not None
    # Accepted detections never overlap, so ordered by start they are ordered by end too.
    accepted: list[Detection] = []
    starts: list[int] = []
    for kind in _PRECEDENCE[: max(_RANK[kind] for kind in wanted) + 1]:
        if kind in _NUMERIC and not has_digits:
            continue
        for found in _FINDERS[kind](text):
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
    ``injection_phrases`` holds the injection phrasings found, lower-cased with runs of whitespace collapsed,
    in order of appearance and without repeats.
    """
    counts = dict.fromkeys(PII_KINDS, 0)
    phrases: list[str] = []
    for found in detect(text):
        if found.kind == "injection":
            phrase = " ".join(found.text.lower().split())
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
