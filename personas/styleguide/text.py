"""Sentences, words and syllables: the sentence splitting (``sentence_spans``), the syllable estimate
(``syllable_count``) and the Flesch-Kincaid grade level (``reading_grade``) that the style guide's length and
reading level rules use.
"""

import functools
import re
from collections.abc import Sequence

# Texts with fewer words than this are not given a reading grade: the formula is meaningless for a line or two.
MIN_GRADED_WORDS = 20


# --- sentences, words and syllables -------------------------------------------------------------------------------

# Words: runs of letters/digits, keeping inner apostrophes, hyphens, dots and commas ("don't", "e.g", "3.5", "1,000").
_WORD = re.compile(r"\w+(?:['\u2019.,-]\w+)*")
# A sentence ends at terminal punctuation (plus closing quotes/brackets) before whitespace or the end, or at a
# blank line.
_BOUNDARY = re.compile(r"(?P<stop>[.!?]+)[\"'\u201d\u2019)\]]*(?=\s|\Z)|\n[ \t]*\n")
# Tokens that end in a full stop without ending the sentence (lower case, without their final "."). "etc." is
# left out on purpose: it ends sentences as often as not.
ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "e.g", "i.e", "cf", "approx", "fig", "inc", "ltd"}
)
_VOWEL_GROUP = re.compile(r"[aeiouy]+")
_VOWELS = frozenset("aeiouy")


def _is_abbreviation(text: str, stop: int) -> bool:
    begin = stop
    while begin > 0 and not text[begin - 1].isspace():
        begin -= 1
    return text[begin:stop].lstrip("\"'\u201c\u2018([").lower() in ABBREVIATIONS


def _sentences(text: str) -> list[tuple[int, int, list[str]]]:
    """The text's sentences as (start, end, words), trimmed of surrounding whitespace; wordless ones are skipped."""
    sentences: list[tuple[int, int, list[str]]] = []

    def add(start: int, end: int) -> None:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        words = _WORD.findall(text, start, end)
        if words:
            sentences.append((start, end, words))

    start = 0
    for match in _BOUNDARY.finditer(text):
        stop = match.group("stop")
        if stop == "." and _is_abbreviation(text, match.start()):
            continue
        add(start, match.end() if stop else match.start())
        start = match.end()
    add(start, len(text))
    return sentences


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """The (start, end) spans of the text's sentences, trimmed of surrounding whitespace, skipping wordless ones."""
    return [(start, end) for start, end, _ in _sentences(text)]


@functools.lru_cache(maxsize=8192)
def syllable_count(word: str) -> int:
    """A deterministic estimate: vowel groups (y counts), less a silent final "e" (but "-le" after a consonant is
    a syllable, as in "table"), and at least 1 (numbers and other letterless words count as 1)."""
    word = "".join(ch for ch in word.lower() if ch.isalpha())
    count = len(_VOWEL_GROUP.findall(word))
    silent_e = len(word) > 2 and word.endswith("e") and word[-2] not in _VOWELS
    if silent_e and not (word.endswith("le") and word[-3] not in _VOWELS):
        count -= 1
    return max(count, 1)


def _grade(sentences: Sequence[tuple[int, int, list[str]]]) -> tuple[float, int]:
    words = [word for _, _, sentence_words in sentences for word in sentence_words]
    if not words:
        return 0.0, 0
    syllables = sum(syllable_count(word) for word in words)
    return 0.39 * (len(words) / len(sentences)) + 11.8 * (syllables / len(words)) - 15.59, len(words)


def reading_grade(text: str) -> tuple[float, int]:
    """The Flesch-Kincaid grade level of the text and its word count (grade 0.0 for a text without words):
    0.39 * words per sentence + 11.8 * syllables per word - 15.59."""
    return _grade(_sentences(text))
