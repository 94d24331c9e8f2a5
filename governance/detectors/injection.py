"""Prompt injection: the phrasings of ``phrases`` found in every view of a text that undoes a disguise.

A text is searched lower-cased after normalisation (``normalise.clean``), then, when it has words that mix letters
with digits or symbols, read as leetspeak, and, when it has letters spelled out one by one, with those joined;
joined runs are also searched with the phrases' spaces made optional (``ignoreallpreviousinstructions``). Runs of
base64 that decode to text are decoded and searched the same way. Findings are spans of the original text; where
two overlap, the earlier (then the longer) is kept.
"""

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from governance.detectors import normalise, phrases
from governance.detectors.findings import Detection

_WORDS = re.compile(r"[^\W\d_]+")
_ASCII_WORDS = re.compile(r"[a-z]+")  # the same in a lower-cased ASCII text, faster
_WORD_CHAR = re.compile(r"\w")
_CJK_START = 0x2E80  # scripts written without spaces: a match may start inside a "word"


@dataclass(frozen=True)
class _Phrase:
    name: str
    pattern: re.Pattern[str]


def _keywords(keywords: str) -> list[str]:
    return normalise.fold_pattern(keywords).split()


def _is_word(keyword: str) -> bool:
    return _WORDS.fullmatch(keyword) is not None and ord(max(keyword)) < _CJK_START


PHRASES = tuple(_Phrase(name, re.compile(normalise.fold_pattern(pattern))) for name, _, pattern in phrases.PATTERNS)
NAMES = tuple(dict.fromkeys(phrase.name for phrase in PHRASES))


class _Index:
    """Which phrases a text may match: each phrase has keywords, and a text with none of them cannot match it, so
    its pattern is not even tried. Keywords that are words are looked up among the text's words, the others (symbols,
    scripts written without spaces) anywhere in it."""

    def __init__(self, entries: Iterator[tuple[int, list[str]]], *, words: bool) -> None:
        by_word: dict[str, list[int]] = {}
        by_part: dict[str, list[int]] = {}
        for index, keywords in entries:
            for keyword in keywords:
                (by_word if words and _is_word(keyword) else by_part).setdefault(keyword, []).append(index)
        self.by_word = by_word
        self.by_ascii_part = tuple((part, indexes) for part, indexes in by_part.items() if part.isascii())
        self.by_other_part = tuple((part, indexes) for part, indexes in by_part.items() if not part.isascii())

    def candidates(self, text: str) -> list[int]:
        chosen: set[int] = set()
        words = (_ASCII_WORDS if text.isascii() else _WORDS).findall(text)
        for word in self.by_word.keys() & words:
            chosen.update(self.by_word[word])
        for part, indexes in self.by_ascii_part if text.isascii() else (*self.by_ascii_part, *self.by_other_part):
            if part in text:
                chosen.update(indexes)
        return sorted(chosen)


_INDEX = _Index(((index, _keywords(keywords)) for index, (_, keywords, _) in enumerate(phrases.PATTERNS)), words=True)


@cache
def _tight() -> tuple[tuple[_Phrase, ...], _Index]:
    """The phrases with their spaces optional, for letters that were spelled out one by one and joined; their
    keywords are looked for anywhere (joined words are one word)."""
    tight = tuple(
        _Phrase(phrase.name, re.compile(phrase.pattern.pattern.replace(r"\s+", r"\s*").replace(r"\b", "")))
        for phrase in PHRASES
    )
    entries = ((index, _keywords(keywords)) for index, (_, keywords, _) in enumerate(phrases.PATTERNS))
    return tight, _Index(entries, words=False)


def _matches(view: normalise.View, table: tuple[_Phrase, ...], index: _Index) -> Iterator[tuple[int, int, str]]:
    haystack = view.text
    for number in index.candidates(haystack):
        pattern = table[number].pattern
        pos = 0
        while (match := pattern.search(haystack, pos)) is not None:
            start, end = match.span()
            inside_a_word = (
                start
                and ord(haystack[start]) < _CJK_START
                and _WORD_CHAR.match(haystack, start)
                and _WORD_CHAR.match(haystack, start - 1)
            )
            if inside_a_word or end == start:  # "undo anything now" is not "do anything now"
                pos = start + 1
                continue
            yield (*view.source_span(start, end), " ".join(match.group().split()))
            pos = end


def _views(cleaned: normalise.View) -> Iterator[tuple[normalise.View, tuple[_Phrase, ...], _Index]]:
    text, lower = cleaned.source, cleaned.lower
    yield lower, PHRASES, _INDEX
    if len(lower.text) < len(text):  # invisible characters were removed: they may have stood between words
        yield (lower, *_tight())
    yield from ((view, PHRASES, _INDEX) for view in normalise.leet(lower))
    joined = normalise.collapse(lower)
    if joined is not None:
        yield joined, PHRASES, _INDEX
        yield (joined, *_tight())


# --- base64 ----------------------------------------------------------------------------------------------------

# A run of 16 or more base64 characters, not part of a longer word; the boundaries are checked after the match,
# since a pattern that starts with a look-behind is tried at every position.
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_BASE64_BOUNDARY = re.compile(r"[\w+/=-]")


def _decoded(token: str) -> str | None:
    """The text a base64 (or base64url) token encodes, when it encodes readable text with words in it."""
    body = token.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    readable = all(char.isprintable() or char in "\n\r\t" for char in decoded)
    return decoded if readable and " " in decoded.strip() else None


def _encoded(text: str) -> Iterator[tuple[int, int, str]]:
    for token in _BASE64.finditer(text):
        start, end = token.span()
        if (start and _BASE64_BOUNDARY.match(text, start - 1)) or _BASE64_BOUNDARY.match(text, end):
            continue
        decoded = _decoded(token.group())
        if decoded is None:
            continue
        inside = _spans(normalise.clean(decoded))
        if inside:
            yield token.start(), token.end(), f"base64: {inside[0][2]}"


# --- finding ---------------------------------------------------------------------------------------------------


def _spans(cleaned: normalise.View) -> list[tuple[int, int, str]]:
    found = [span for view, table, index in _views(cleaned) for span in _matches(view, table, index)]
    kept: list[tuple[int, int, str]] = []
    for start, end, signal in sorted(found, key=lambda span: (span[0], -span[1])):
        if not kept or start >= kept[-1][1]:
            kept.append((start, end, signal))
    return kept


def find(text: str, cleaned: normalise.View | None = None) -> Iterator[Detection]:
    """The injection phrasings in ``text``, as spans of ``text``, sorted by start, not overlapping. ``cleaned`` is
    ``normalise.clean(text)`` when the caller has it already."""
    spans = _spans(cleaned if cleaned is not None else normalise.clean(text)) + list(_encoded(text))
    end = 0
    for start, stop, signal in sorted(spans, key=lambda span: (span[0], -span[1])):
        if start >= end:
            yield Detection("injection", start, stop, text[start:stop], signal)
            end = stop
