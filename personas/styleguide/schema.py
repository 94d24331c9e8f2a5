"""The JSON schema of a style guide spec (``STYLE_GUIDE_SCHEMA``): banned phrases, substitutions, disclaimers,
sentence length and reading grade limits, and the examples the guide must judge correctly.
"""

from typing import Any


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
