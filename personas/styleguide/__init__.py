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

The code lives in submodules: ``schema``, ``compiling`` (the cached compiled guide), ``text`` (sentences, syllables
and reading grade), ``linting`` (``lint``, ``rewrite``, ``Violation``) and ``checks`` (``check_examples``); every
public name is importable from here.
"""

from personas.styleguide.checks import check_examples
from personas.styleguide.compiling import _compile as _compile  # the cache, inspected by the tests
from personas.styleguide.linting import Violation, lint, rewrite
from personas.styleguide.schema import STYLE_GUIDE_SCHEMA
from personas.styleguide.text import ABBREVIATIONS, MIN_GRADED_WORDS, reading_grade, sentence_spans, syllable_count

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
