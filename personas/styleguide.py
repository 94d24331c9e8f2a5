"""Style guides: the rules a persona's words must follow, and ``lint`` to check a text against them.

A style guide is a governed object whose spec is a JSON document (see ``STYLE_GUIDE_SCHEMA``). ``lint`` checks a
text against a spec and returns ``Violation`` objects ordered by position:

* ``banned`` phrases are matched whole-word and case-insensitively ("cheap" does not match "cheapest", but does
  match "Cheap" and the "cheap" of "cheap-ish"); the words of a multi-word phrase may be separated by any run of
  whitespace, newlines included. When banned phrases overlap, the longest one at the leftmost position is reported
  and the shorter ones inside it are not.
* ``substitutions`` are matched the same way and give ``rewrite`` violations; ``rewrite`` applies them. The
  replacement's first letter is capitalised when the matched text's is.
* ``disclaimers`` must appear (case-insensitively, whitespace-normalised) whenever one of their triggers does.
* ``max_sentence_words`` warns about each sentence longer than the limit. Sentences end at ``.``, ``!`` or ``?``
  followed by whitespace or the end of the text (decimals like 3.5 and a few abbreviations like "e.g." and "Dr."
  don't end one), and at blank lines, so list items and headings without a full stop are not run together.
* ``max_reading_grade`` warns once when the text's Flesch-Kincaid grade level is above the limit. Texts under
  ``MIN_GRADED_WORDS`` words are too short to grade meaningfully and are never flagged.

``lint`` expects a spec that validates against the schema; it ignores keys it does not know and entries it cannot
use. Compiled patterns are cached per spec, so linting many texts with the same guide compiles it once.
"""

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from governance.checks import CheckResult, Finding

__all__ = [
    "ABBREVIATIONS",
    "MIN_GRADED_WORDS",
    "STYLE_GUIDE_SCHEMA",
    "Violation",
    "check_examples",
    "lint",
    "reading_grade",
    "rewrite",
    "sentence_spans",
    "syllable_count",
]

# Texts with fewer words than this are not given a reading grade: the formula is meaningless for a line or two.
MIN_GRADED_WORDS = 20


def _severity(description: str) -> dict[str, Any]:
    return {"type": "string", "enum": ["block", "warn"], "default": "block", "description": description}


def _phrase(description: str) -> dict[str, Any]:
    # "pattern" is searched, not anchored: the phrase must contain at least one non-whitespace character.
    return {"type": "string", "minLength": 1, "pattern": r"\S", "description": description}


STYLE_GUIDE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Style guide",
    "description": "The rules a persona's words must follow. Every key is optional; a missing rule does not apply.",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "description": {"type": "string", "description": "Voice and tone notes for writers (free text, not checked)."},
        "banned": {
            "type": "array",
            "description": "Words and phrases that must not be used (matched whole-word, case-insensitively).",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["phrase"],
                "properties": {
                    "phrase": _phrase("The banned word or phrase; words may be separated by any whitespace."),
                    "severity": _severity("'block' stops the text; 'warn' only flags it. Defaults to 'block'."),
                    "suggestion": {"type": "string", "description": "What to say instead, shown to the writer."},
                    "reason": {"type": "string", "description": "Why the phrase is banned, shown to the writer."},
                },
            },
        },
        "substitutions": {
            "type": "array",
            "description": "Phrases that are rewritten automatically to their replacement.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["phrase", "replacement"],
                "properties": {
                    "phrase": _phrase("The word or phrase to replace (matched whole-word, case-insensitively)."),
                    "replacement": _phrase("The text to put in its place; capitalised when the match is."),
                },
            },
        },
        "disclaimers": {
            "type": "array",
            "description": "Text that must be present whenever a topic comes up.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["triggers", "text"],
                "properties": {
                    "topic": {"type": "string", "description": "A short name for the topic, used in messages."},
                    "triggers": {
                        "type": "array",
                        "description": "Words or phrases that bring up the topic (matched whole-word).",
                        "minItems": 1,
                        "items": _phrase("A trigger word or phrase."),
                    },
                    "text": _phrase("The disclaimer that must appear (case-insensitive, whitespace-normalised)."),
                    "severity": _severity("'block' stops a text without it; 'warn' only flags it. Default 'block'."),
                },
            },
        },
        "max_sentence_words": {
            "type": "integer",
            "minimum": 3,
            "maximum": 200,
            "description": "Sentences with more words than this are flagged (warn).",
        },
        "max_reading_grade": {
            "type": "number",
            "minimum": 1,
            "maximum": 20,
            "description": "Texts with a higher Flesch-Kincaid grade level are flagged (warn).",
        },
        "examples": {
            "type": "array",
            "description": "Texts the guide must judge correctly; checked before a version can be approved.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["text", "compliant"],
                "properties": {
                    "text": {"type": "string", "description": "The example text."},
                    "compliant": {
                        "type": "boolean",
                        "description": "True if the guide must not block it; false if it must flag it somehow.",
                    },
                    "note": {"type": "string", "description": "Why the example is (or is not) compliant."},
                },
            },
        },
    },
}


@dataclass(frozen=True)
class Violation:
    """One place where a text breaks a style guide rule."""

    rule: str  # "banned", "substitution", "disclaimer", "sentence_length", "reading_level"
    start: int  # span in the text; whole-text rules (reading level) use 0, len(text)
    end: int
    severity: str  # "block" | "rewrite" | "warn"
    message: str  # human-readable, names the phrase or limit
    suggestion: str  # replacement text or what to add; "" if none

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


# --- lint and rewrite ---------------------------------------------------------------------------------------------


def _capitalised_like(matched: str, replacement: str) -> str:
    return replacement[:1].upper() + replacement[1:] if matched[:1].isupper() else replacement


def _phrase_violations(text: str, guide: _Guide) -> list[Violation]:
    found: list[Violation] = []
    free_from = [0, 0]  # banned and substitution matches don't overlap others of their kind
    triggered: dict[int, re.Match[str]] = {}  # disclaimer slot -> its first trigger
    index = guide.index
    for token in guide.tokens.finditer(text):
        rules = index.get(token.group().lower())
        if rules is None:
            continue
        start = token.start()
        for rule in rules:
            slot = rule.slot
            if (start < free_from[slot]) if slot < _FIRST_DISCLAIMER else (slot in triggered):
                continue
            match = rule.pattern.match(text, start)
            if match is None:
                continue
            if slot == _BANNED:
                free_from[slot] = match.end()
                banned = guide.banned[rule.entry]
                message = f'"{match.group()}" is banned (phrase "{banned.phrase}")'
                if banned.reason:
                    message += f": {banned.reason}"
                if banned.suggestion:
                    message += f'; suggested instead: "{banned.suggestion}"'
                found.append(Violation("banned", start, match.end(), banned.severity, message, banned.suggestion))
            elif slot == _SUBSTITUTION:
                free_from[slot] = match.end()
                replacement = _capitalised_like(match.group(), guide.replacements[rule.entry])
                message = f'Replace "{match.group()}" with "{replacement}"'
                found.append(Violation("substitution", start, match.end(), "rewrite", message, replacement))
            else:
                triggered[slot] = match

    if triggered:
        normalized = _normalize(text)
        for slot, match in triggered.items():
            disclaimer = guide.disclaimers[slot - _FIRST_DISCLAIMER]
            if disclaimer.normalized in normalized:
                continue
            topic = f" ({disclaimer.topic})" if disclaimer.topic else ""
            message = f'Mentions "{match.group()}"{topic} without the disclaimer "{disclaimer.text}"'
            found.append(
                Violation("disclaimer", match.start(), match.end(), disclaimer.severity, message, disclaimer.text)
            )
    return found


def lint(text: str, spec: dict[str, Any]) -> list[Violation]:
    """Check a text against a style guide spec; violations are ordered by (start, rule)."""
    guide = _compile(json.dumps(spec, sort_keys=True))
    found = _phrase_violations(text, guide) if guide.index else []

    if guide.max_sentence_words is not None or guide.max_reading_grade is not None:
        sentences = _sentences(text)
        limit = guide.max_sentence_words
        if limit is not None:
            for start, end, words in sentences:
                if len(words) > limit:
                    message = f"Sentence has {len(words)} words; the limit is {limit}"
                    found.append(Violation("sentence_length", start, end, "warn", message, ""))
        if guide.max_reading_grade is not None:
            grade, count = _grade(sentences)
            if count >= MIN_GRADED_WORDS and grade > guide.max_reading_grade:
                message = f"Reading grade {grade:.1f} is above the limit of {guide.max_reading_grade:g}"
                found.append(Violation("reading_level", 0, len(text), "warn", message, ""))

    found.sort(key=lambda v: (v.start, v.rule, v.end, v.message))
    return found


def rewrite(text: str, violations: Sequence[Violation]) -> str:
    """Apply the "rewrite" violations (replace each span with its suggestion), right to left; everything else in
    the text is left as it is. A rewrite overlapping one already applied (further right) is skipped."""
    edits = sorted({(v.start, v.end, v.suggestion) for v in violations if v.severity == "rewrite"}, reverse=True)
    boundary = len(text)
    for start, end, suggestion in edits:
        if not 0 <= start <= end <= len(text):
            raise ValueError(f"violation span {start}-{end} is outside the text (length {len(text)})")
        if end > boundary:
            continue
        text = text[:start] + suggestion + text[end:]
        boundary = start
    return text


# --- the approval check -------------------------------------------------------------------------------------------


def _describe(violations: Sequence[Violation]) -> str:
    return "; ".join(f"{v.rule}: {v.message}" for v in violations)


def check_examples(spec: dict[str, Any]) -> CheckResult:
    """Lint the guide's own examples: compliant ones must not be blocked (anything milder is a warning), and
    counter-examples must be flagged by at least one rule."""
    findings: list[Finding] = []
    if not _entries(spec, "examples"):
        findings.append(
            Finding(message="no examples: add texts the guide should accept and counter-examples it should flag",
                    severity="warning", path="examples")
        )  # fmt: skip
    for i, substitution in enumerate(_entries(spec, "substitutions")):
        replacement = substitution.get("replacement")
        blocked = [v for v in lint(replacement, spec) if v.severity == "block"] if isinstance(replacement, str) else []
        if blocked:
            message = f"The replacement would itself be blocked: {_describe(blocked)}"
            findings.append(Finding(message=message, severity="error", path=f"substitutions[{i}].replacement"))
    for i, example in enumerate(_entries(spec, "examples")):
        text = example.get("text")
        if not isinstance(text, str):
            continue
        path = f"examples[{i}].text"
        violations = lint(text, spec)
        if example.get("compliant", True):
            blocking = [v for v in violations if v.severity == "block"]
            if blocking:
                message = f"Example marked compliant is blocked by the guide: {_describe(blocking)}"
                findings.append(Finding(message=message, severity="error", path=path))
            elif violations:
                message = f"Example marked compliant is flagged by the guide: {_describe(violations)}"
                findings.append(Finding(message=message, severity="warning", path=path))
        elif not violations:
            message = "The guide does not catch this counter-example: no rule flags it"
            findings.append(Finding(message=message, severity="error", path=path))
    return CheckResult(name="style_guide.examples", findings=tuple(findings))
