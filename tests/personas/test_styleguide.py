"""Style guides: the spec's schema, each lint rule, rewriting substitutions, and checking a guide's own examples."""

import copy
from typing import Any

import jsonschema
import pytest

from personas import styleguide
from personas.styleguide import (
    STYLE_GUIDE_SCHEMA,
    Violation,
    check_examples,
    lint,
    reading_grade,
    rewrite,
    sentence_spans,
    syllable_count,
)

FULL_GUIDE: dict[str, Any] = {
    "description": "Warm, plain and direct. Never pushy about money.",
    "banned": [
        {"phrase": "cheap", "severity": "block", "suggestion": "affordable", "reason": "sounds low quality"},
        {"phrase": "low hanging fruit", "severity": "warn", "suggestion": "quick win"},
        {"phrase": "guaranteed"},
    ],
    "substitutions": [{"phrase": "guys", "replacement": "everyone"}, {"phrase": "utilize", "replacement": "use"}],
    "disclaimers": [
        {
            "topic": "investment",
            "triggers": ["invest", "stock", "portfolio"],
            "text": "This is not financial advice.",
            "severity": "block",
        }
    ],
    "max_sentence_words": 30,
    "max_reading_grade": 9.0,
    "examples": [
        {"text": "Thanks for asking! Our plans are affordable.", "compliant": True, "note": "plain and friendly"},
        {"text": "Our cheap plans are the best.", "compliant": False, "note": "uses a banned word"},
    ],
}

CONVOLUTED = (
    "Notwithstanding the aforementioned considerations, organizational stakeholders must collaboratively "
    "operationalize comprehensive governance methodologies, thereby institutionalizing accountability "
    "mechanisms and facilitating interdepartmental communication regarding unprecedented regulatory "
    "developments affecting multinational corporations."
)
SIMPLE = (
    "We can help. Tell us what you need. We will call you back today. "
    "You can also write to us. We read every note. Thanks for your time."
)


def rules(violations: list[Violation]) -> list[tuple[str, int, int]]:
    return [(v.rule, v.start, v.end) for v in violations]


def test_violation_as_dict() -> None:
    violation = Violation("banned", 1, 6, "block", '"cheap" is banned', "affordable")
    assert violation.as_dict() == {
        "rule": "banned",
        "start": 1,
        "end": 6,
        "severity": "block",
        "message": '"cheap" is banned',
        "suggestion": "affordable",
    }


# --- the schema ---------------------------------------------------------------------------------------------------


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(STYLE_GUIDE_SCHEMA)
    assert STYLE_GUIDE_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_object_is_closed_and_every_property_described() -> None:
    objects = 0

    def walk(node: Any, where: str) -> None:
        nonlocal objects
        if isinstance(node, dict):
            if node.get("type") == "object":
                objects += 1
                assert node.get("additionalProperties") is False, where
                for name, prop in node["properties"].items():
                    assert prop.get("description"), f"{where}.{name}"
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(STYLE_GUIDE_SCHEMA, "$")
    assert objects == 5  # the guide, banned, substitutions, disclaimers and examples entries


def test_full_and_empty_specs_validate() -> None:
    validator = jsonschema.Draft202012Validator(STYLE_GUIDE_SCHEMA)
    validator.validate(FULL_GUIDE)
    validator.validate({})


def with_changes(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(FULL_GUIDE)
    node: Any = spec
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return spec


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(with_changes(("tone",), "friendly"), id="unknown-key"),
        pytest.param(with_changes(("banned", 0, "weight"), 3), id="unknown-nested-key"),
        pytest.param(with_changes(("banned", 0, "severity"), "error"), id="bad-banned-severity"),
        pytest.param(with_changes(("disclaimers", 0, "severity"), "rewrite"), id="bad-disclaimer-severity"),
        pytest.param(with_changes(("banned", 0, "phrase"), ""), id="empty-phrase"),
        pytest.param(with_changes(("banned", 0, "phrase"), "  \n"), id="blank-phrase"),
        pytest.param(with_changes(("substitutions", 0, "replacement"), ""), id="empty-replacement"),
        pytest.param(with_changes(("disclaimers", 0, "triggers"), []), id="no-triggers"),
        pytest.param(with_changes(("disclaimers", 0, "triggers"), ["invest", ""]), id="empty-trigger"),
        pytest.param(with_changes(("max_sentence_words",), 1), id="max-sentence-words-1"),
        pytest.param(with_changes(("max_sentence_words",), 201), id="max-sentence-words-201"),
        pytest.param(with_changes(("max_sentence_words",), 12.5), id="max-sentence-words-fraction"),
        pytest.param(with_changes(("max_reading_grade",), 0.5), id="max-reading-grade-low"),
        pytest.param(with_changes(("max_reading_grade",), 21), id="max-reading-grade-high"),
        pytest.param(with_changes(("examples", 0, "compliant"), "yes"), id="compliant-not-boolean"),
        pytest.param({"banned": [{"severity": "warn"}]}, id="banned-without-phrase"),
        pytest.param({"examples": [{"text": "Hello."}]}, id="example-without-compliant"),
        pytest.param({"banned": "cheap"}, id="banned-not-a-list"),
    ],
)
def test_invalid_specs_are_rejected(spec: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(STYLE_GUIDE_SCHEMA).validate(spec)


# --- banned phrases -----------------------------------------------------------------------------------------------

BANNED = {"banned": [{"phrase": "cheap", "suggestion": "affordable", "reason": "sounds low quality"}]}


def test_banned_phrase_gives_a_blocking_violation_with_exact_span() -> None:
    [violation] = lint("A cheap plan.", BANNED)
    assert violation == Violation(
        rule="banned",
        start=2,
        end=7,
        severity="block",
        message=violation.message,
        suggestion="affordable",
    )
    assert '"cheap"' in violation.message
    assert "sounds low quality" in violation.message


def test_banned_matching_ignores_case_and_reports_each_occurrence() -> None:
    text = "Cheap, CHEAP and cheap."
    assert rules(lint(text, BANNED)) == [("banned", 0, 5), ("banned", 7, 12), ("banned", 17, 22)]


def test_banned_matches_whole_words_only() -> None:
    assert lint("The cheapest and cheaply made, not scheap.", BANNED) == []
    # Punctuation is a word boundary: the "cheap" of "cheap-ish" and "(cheap)" is the banned word.
    assert rules(lint("cheap-ish (cheap)", BANNED)) == [("banned", 0, 5), ("banned", 11, 16)]


def test_multi_word_phrases_tolerate_runs_of_whitespace_including_newlines() -> None:
    spec = {"banned": [{"phrase": "low hanging fruit", "severity": "warn"}]}
    text = "Pick the LOW   hanging\n\tfruit first."
    [violation] = lint(text, spec)
    assert (violation.start, violation.end, violation.severity) == (9, 29, "warn")
    assert text[violation.start : violation.end] == "LOW   hanging\n\tfruit"
    # Other punctuation between the words is not whitespace.
    assert lint("low-hanging fruit", spec) == []
    assert lint("low hanging fruits", spec) == []


def test_overlapping_banned_phrases_report_the_longest() -> None:
    spec = {"banned": [{"phrase": "deal"}, {"phrase": "cheap"}, {"phrase": "cheap deal"}]}
    assert rules(lint("A cheap deal, a cheap car, a deal.", spec)) == [
        ("banned", 2, 12),
        ("banned", 16, 21),
        ("banned", 29, 33),
    ]


def test_phrases_with_punctuation_at_either_end() -> None:
    spec = {"banned": [{"phrase": "#winning"}, {"phrase": "A+"}]}
    assert rules(lint("So #winning, grade a+ today", spec)) == [("banned", 3, 11), ("banned", 19, 21)]


def test_a_phrase_listed_twice_keeps_its_first_entry() -> None:
    spec = {"banned": [{"phrase": "cheap", "severity": "warn"}, {"phrase": "Cheap", "severity": "block"}]}
    [violation] = lint("cheap", spec)
    assert violation.severity == "warn"


# --- substitutions ------------------------------------------------------------------------------------------------

SUBSTITUTIONS = {
    "substitutions": [{"phrase": "guys", "replacement": "everyone"}, {"phrase": "reach out", "replacement": "contact"}]
}


def test_substitution_gives_a_rewrite_violation() -> None:
    [violation] = lint("Hi guys!", SUBSTITUTIONS)
    assert (violation.rule, violation.start, violation.end) == ("substitution", 3, 7)
    assert (violation.severity, violation.suggestion) == ("rewrite", "everyone")
    assert '"guys"' in violation.message
    assert '"everyone"' in violation.message


def test_substitution_suggestion_is_capitalised_like_the_match() -> None:
    violations = lint("Guys, guys and GUYS. Reach\nout to us.", SUBSTITUTIONS)
    assert [v.suggestion for v in violations] == ["Everyone", "everyone", "Everyone", "Contact"]


def test_substitutions_match_whole_words() -> None:
    assert lint("The guyser is outreach.", SUBSTITUTIONS) == []


# --- disclaimers --------------------------------------------------------------------------------------------------

DISCLAIMER = {
    "disclaimers": [
        {
            "topic": "investment",
            "triggers": ["portfolio", "invest", "stock market"],
            "text": "This is not financial advice.",
        }
    ]
}


def test_missing_disclaimer_is_flagged_once_at_the_first_trigger() -> None:
    text = "You could invest in the Stock\nmarket or review your portfolio."
    [violation] = lint(text, DISCLAIMER)
    assert (violation.rule, violation.start, violation.end) == ("disclaimer", 10, 16)
    assert (violation.severity, violation.suggestion) == ("block", "This is not financial advice.")
    assert "investment" in violation.message
    assert '"invest"' in violation.message


def test_disclaimer_present_in_any_case_and_spacing_satisfies_the_rule() -> None:
    text = "Review your portfolio yearly.\nThis is NOT\n  financial advice."
    assert lint(text, DISCLAIMER) == []


def test_no_trigger_means_no_disclaimer_needed() -> None:
    # Whole words: "investing" and "stocks" are not the triggers "invest" and "stock market".
    assert lint("We are investing in stocks of paper for the office.", DISCLAIMER) == []


def test_disclaimer_severity_can_be_warn() -> None:
    spec = copy.deepcopy(DISCLAIMER)
    spec["disclaimers"][0]["severity"] = "warn"
    [violation] = lint("Check your portfolio.", spec)
    assert violation.severity == "warn"


def test_each_disclaimer_is_checked_separately() -> None:
    spec = copy.deepcopy(DISCLAIMER)
    spec["disclaimers"].append({"topic": "medical", "triggers": ["dose"], "text": "Ask your doctor."})
    text = "About the dose: ask your doctor. Then invest."
    assert rules(lint(text, spec)) == [("disclaimer", 38, 44)]
    # The disclaimer text must appear whole, its full stop included.
    assert rules(lint("About the dose: ask your doctor", spec)) == [("disclaimer", 10, 14)]


# --- sentence length ----------------------------------------------------------------------------------------------


def test_sentences_do_not_split_on_decimals_or_abbreviations() -> None:
    text = "Rates rose 3.5 percent, e.g. for loans. Dr. Smith and Mr. Jones agree! Do you?"
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Rates rose 3.5 percent, e.g. for loans.",
        "Dr. Smith and Mr. Jones agree!",
        "Do you?",
    ]


def test_sentences_end_at_closing_quotes_and_blank_lines() -> None:
    text = 'He said "stop." Then left\n\n- a list item\n- another item\n\nLast line without a stop'
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        'He said "stop."',
        "Then left",
        "- a list item\n- another item",
        "Last line without a stop",
    ]


def test_long_sentences_are_warned_with_their_span() -> None:
    spec = {"max_sentence_words": 5}
    text = "One two three four five. One two three four five six!  Short."
    assert [(v.rule, v.start, v.end, v.severity) for v in lint(text, spec)] == [("sentence_length", 25, 53, "warn")]
    assert "6 words" in lint(text, spec)[0].message
    assert "limit is 5" in lint(text, spec)[0].message


def test_abbreviations_and_decimals_count_inside_one_sentence() -> None:
    text = "Take 2.5 mg, e.g. with food. Dr. Who agrees."
    assert rules(lint(text, {"max_sentence_words": 5})) == [("sentence_length", 0, 28)]
    assert lint(text, {"max_sentence_words": 6}) == []


# --- reading level ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "syllables"),
    [
        ("cat", 1),
        ("the", 1),
        ("make", 1),
        ("table", 2),
        ("agree", 2),
        ("rhythm", 1),
        ("beautiful", 3),
        ("organization", 5),
        ("2024", 1),
        ("Don't", 1),
    ],
)
def test_syllable_count_heuristic(word: str, syllables: int) -> None:
    assert syllable_count(word) == syllables


def test_reading_grade_uses_the_flesch_kincaid_formula() -> None:
    grade, words = reading_grade("The cat sat. The dog ran.")
    assert words == 6
    assert grade == pytest.approx(0.39 * 3 + 11.8 * 1 - 15.59)


def test_simple_text_passes_and_convoluted_text_is_warned() -> None:
    spec = {"max_reading_grade": 8}
    assert reading_grade(SIMPLE)[0] < 3
    assert lint(SIMPLE, spec) == []
    grade, _ = reading_grade(CONVOLUTED)
    assert grade > 20
    [violation] = lint(CONVOLUTED, spec)
    assert (violation.rule, violation.start, violation.end, violation.severity) == (
        "reading_level",
        0,
        len(CONVOLUTED),
        "warn",
    )
    assert f"{grade:.1f}" in violation.message
    assert "limit of 8" in violation.message


def test_texts_under_twenty_words_are_not_graded() -> None:
    short = (
        "Notwithstanding aforementioned considerations, multinational organizations institutionalize accountability."
    )
    assert reading_grade(short)[0] > 20
    assert lint(short, {"max_reading_grade": 5}) == []


# --- lint as a whole ----------------------------------------------------------------------------------------------


def test_empty_spec_and_unknown_rules_give_no_violations() -> None:
    text = "Hi guys, a cheap stock portfolio. " + CONVOLUTED
    assert lint(text, {}) == []
    assert lint(text, {"future_rule": {"x": 1}}) == []
    assert lint("", FULL_GUIDE) == []


def test_violations_are_ordered_by_start_then_rule() -> None:
    text = "Cheap deals for you guys to invest in! " + CONVOLUTED
    assert [(v.start, v.rule) for v in lint(text, {**FULL_GUIDE, "max_sentence_words": 20})] == [
        (0, "banned"),
        (0, "reading_level"),
        (20, "substitution"),
        (28, "disclaimer"),
        (39, "sentence_length"),
    ]


def test_lint_is_deterministic() -> None:
    text = "Cheap deals for you guys to invest in! " + CONVOLUTED
    first = lint(text, FULL_GUIDE)
    assert first == lint(text, copy.deepcopy(FULL_GUIDE))
    assert [v.as_dict() for v in first] == [v.as_dict() for v in lint(text, FULL_GUIDE)]


def test_a_guide_is_compiled_once() -> None:
    spec = {"banned": [{"phrase": "compile-once-test"}], "max_sentence_words": 10}
    lint("first", spec)
    misses = styleguide._compile.cache_info().misses
    # An equal spec with its keys in another order is the same guide.
    lint("second compile-once-test", {"max_sentence_words": 10, "banned": [{"phrase": "compile-once-test"}]})
    assert styleguide._compile.cache_info().misses == misses


# --- rewrite ------------------------------------------------------------------------------------------------------


def test_rewrite_applies_substitutions_only() -> None:
    text = "Cheap tips, guys:\n\tplease  utilize these — and GUYS, reach out! Invest now."
    violations = lint(
        text, {**FULL_GUIDE, "substitutions": [*FULL_GUIDE["substitutions"], *SUBSTITUTIONS["substitutions"][1:]]}
    )
    assert {v.rule for v in violations} == {"banned", "substitution", "disclaimer"}
    assert (
        rewrite(text, violations) == "Cheap tips, everyone:\n\tplease  use these — and Everyone, contact! Invest now."
    )


def test_rewrite_without_rewrites_leaves_the_text_identical() -> None:
    text = "A cheap\u00a0plan,  e.g. this one.\n"
    assert rewrite(text, lint(text, BANNED)) == text
    assert rewrite(text, []) == text


def test_rewrite_rejects_spans_outside_the_text() -> None:
    with pytest.raises(ValueError, match="outside the text"):
        rewrite("short", [Violation("substitution", 2, 50, "rewrite", "", "x")])


# --- check_examples -----------------------------------------------------------------------------------------------


def test_a_guide_whose_examples_are_judged_correctly_passes() -> None:
    result = check_examples(FULL_GUIDE)
    assert result.name == "style_guide.examples"
    assert result.findings == ()
    assert result.passed


def test_a_blocked_compliant_example_is_an_error() -> None:
    spec = copy.deepcopy(FULL_GUIDE)
    spec["examples"].append({"text": "Our portfolio of plans is great.", "compliant": True})
    result = check_examples(spec)
    assert not result.passed
    [finding] = result.findings
    assert (finding.severity, finding.path) == ("error", "examples[2].text")
    assert "disclaimer" in finding.message
    assert "portfolio" in finding.message


def test_an_uncaught_counter_example_is_an_error() -> None:
    spec = copy.deepcopy(FULL_GUIDE)
    spec["examples"][1] = {"text": "Our plans are the best in the world.", "compliant": False}
    result = check_examples(spec)
    assert not result.passed
    [finding] = result.findings
    assert (finding.severity, finding.path) == ("error", "examples[1].text")
    assert "does not catch this counter-example" in finding.message


def test_compliant_examples_with_only_warnings_or_rewrites_pass_with_warnings() -> None:
    spec = copy.deepcopy(FULL_GUIDE)
    spec["examples"] = [
        {"text": "Hi guys, thanks for writing.", "compliant": True},
        {"text": "That is low hanging fruit.", "compliant": True},
        {"text": "Hello guys.", "compliant": False},  # caught: any violation counts for a counter-example
    ]
    result = check_examples(spec)
    assert result.passed
    assert [(f.severity, f.path) for f in result.findings] == [
        ("warning", "examples[0].text"),
        ("warning", "examples[1].text"),
    ]
    assert "substitution" in result.findings[0].message
    assert "low hanging fruit" in result.findings[1].message
    assert result.as_dict()["passed"] is True


def test_a_guide_without_examples_passes_with_a_warning() -> None:
    result = check_examples({"banned": [{"phrase": "cheap"}]})
    assert result.passed
    assert [(f.severity, f.path) for f in result.findings] == [("warning", "examples")]


def test_a_substitution_into_a_banned_phrase_fails_the_check() -> None:
    spec = {
        "banned": [{"phrase": "cheap"}],
        "substitutions": [{"phrase": "low cost", "replacement": "cheap"}],
        "examples": [{"text": "A fair price.", "compliant": True}],
    }
    result = check_examples(spec)
    assert not result.passed
    assert [(f.severity, f.path) for f in result.findings] == [("error", "substitutions[0].replacement")]
