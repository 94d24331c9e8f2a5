"""``lint`` and ``rewrite``: checking a text against a style guide spec, giving ``Violation`` objects ordered by
position, and applying the ``rewrite`` violations (substitutions) to the text.
"""

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from personas.styleguide.compiling import _BANNED, _FIRST_DISCLAIMER, _SUBSTITUTION, _compile, _Guide, _normalize
from personas.styleguide.text import MIN_GRADED_WORDS, _grade, _sentences


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
