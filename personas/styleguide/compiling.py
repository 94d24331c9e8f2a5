"""Compiling a style guide spec for ``lint``: its phrases (banned, substitutions, disclaimer triggers) indexed by
their first token, longest first, with the sentence and reading grade limits; cached per canonical spec by
``_compile``.
"""

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# --- compiling a guide --------------------------------------------------------------------------------------------
#
# Rather than one big alternation (which the regex engine tries alternative by alternative at every position), a
# compiled guide indexes its phrases by their first token (lower-cased). Lint tokenises the text once, looks each
# token up, and only tries the few phrases that start with it, longest first; this keeps a large guide fast.

_BANNED = 0
_SUBSTITUTION = 1
_FIRST_DISCLAIMER = 2  # disclaimer i uses slot 2 + i

_WORD_TOKEN = re.compile(r"\w+")
_ANY_TOKEN = re.compile(r"\w+|[^\w\s]")  # when some phrase starts with punctuation ("#hashtag", "$$$")
_WORD_CHAR = re.compile(r"\w")


@dataclass(frozen=True)
class _Banned:
    phrase: str
    severity: str
    suggestion: str
    reason: str


@dataclass(frozen=True)
class _Disclaimer:
    topic: str
    text: str
    normalized: str
    severity: str


@dataclass(frozen=True)
class _Rule:
    slot: int  # _BANNED, _SUBSTITUTION or _FIRST_DISCLAIMER + the disclaimer's position
    entry: int  # position in the guide's banned or replacements tuple (0 for disclaimers)
    pattern: re.Pattern[str]  # the phrase from its first character, matched with pattern.match(text, token_start)


@dataclass(frozen=True)
class _Guide:
    tokens: re.Pattern[str]
    index: Mapping[str, tuple[_Rule, ...]]
    banned: tuple[_Banned, ...]
    replacements: tuple[str, ...]
    disclaimers: tuple[_Disclaimer, ...]
    max_sentence_words: int | None
    max_reading_grade: float | None


def _normalize(text: str) -> str:
    return " ".join(text.split()).casefold()


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    """The phrase with any whitespace between its words, case-insensitive, not running on into a longer word.

    The start needs no check: the phrase is only tried at the start of a token, which (for a phrase starting with
    a word character) is never in the middle of a word."""
    body = r"\s+".join(re.escape(word) for word in phrase.split())
    after = r"(?!\w)" if _WORD_CHAR.match(phrase[-1]) else ""
    return re.compile(body + after, re.IGNORECASE)


def _usable_phrase(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _entries(spec: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = spec.get(key)
    return [entry for entry in value if isinstance(entry, Mapping)] if isinstance(value, list) else []


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _severity_of(entry: Mapping[str, Any]) -> str:
    return "warn" if entry.get("severity") == "warn" else "block"


@functools.lru_cache(maxsize=256)
def _compile(canonical_spec: str) -> _Guide:
    loaded = json.loads(canonical_spec)
    spec: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
    candidates: list[tuple[int, int, str, _Rule]] = []  # (-length, guide order, first token, rule)

    def add(slot: int, entry: int, phrase: str) -> None:
        first = _ANY_TOKEN.match(phrase)
        assert first is not None  # the phrase is stripped and non-empty
        rule = _Rule(slot=slot, entry=entry, pattern=_phrase_pattern(phrase))
        candidates.append((-len(_normalize(phrase)), len(candidates), first.group().lower(), rule))

    # A phrase listed twice (in any capitalisation) keeps its first entry.
    banned: list[_Banned] = []
    seen: set[str] = set()
    for item in _entries(spec, "banned"):
        phrase = _usable_phrase(item.get("phrase"))
        if phrase is None or _normalize(phrase) in seen:
            continue
        seen.add(_normalize(phrase))
        add(_BANNED, len(banned), phrase)
        suggestion, reason = item.get("suggestion"), item.get("reason")
        banned.append(
            _Banned(
                phrase=phrase,
                severity=_severity_of(item),
                suggestion=suggestion if isinstance(suggestion, str) else "",
                reason=reason if isinstance(reason, str) else "",
            )
        )

    replacements: list[str] = []
    seen = set()
    for item in _entries(spec, "substitutions"):
        phrase, replacement = _usable_phrase(item.get("phrase")), item.get("replacement")
        if phrase is None or not isinstance(replacement, str) or _normalize(phrase) in seen:
            continue
        seen.add(_normalize(phrase))
        add(_SUBSTITUTION, len(replacements), phrase)
        replacements.append(replacement)

    disclaimers: list[_Disclaimer] = []
    for item in _entries(spec, "disclaimers"):
        text, triggers = _usable_phrase(item.get("text")), item.get("triggers")
        phrases = [p for p in map(_usable_phrase, triggers if isinstance(triggers, list) else []) if p is not None]
        if text is None or not phrases:
            continue
        for phrase in phrases:
            add(_FIRST_DISCLAIMER + len(disclaimers), 0, phrase)
        topic = item.get("topic")
        disclaimers.append(
            _Disclaimer(
                topic=topic if isinstance(topic, str) else "",
                text=text,
                normalized=_normalize(text),
                severity=_severity_of(item),
            )
        )

    index: dict[str, list[_Rule]] = {}
    for _, _, first, rule in sorted(candidates, key=lambda c: (c[0], c[1])):
        index.setdefault(first, []).append(rule)
    punctuation_first = any(not _WORD_CHAR.match(first) for first in index)
    max_words = _number(spec.get("max_sentence_words"))
    return _Guide(
        tokens=_ANY_TOKEN if punctuation_first else _WORD_TOKEN,
        index={first: tuple(rules) for first, rules in index.items()},
        banned=tuple(banned),
        replacements=tuple(replacements),
        disclaimers=tuple(disclaimers),
        max_sentence_words=int(max_words) if max_words is not None else None,
        max_reading_grade=_number(spec.get("max_reading_grade")),
    )
