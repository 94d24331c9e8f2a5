"""Dialogue flows and the engine: persona validation, slot answers, branches, intents, triggers and templates.

Pure functions only (no HTTP). Every spec the engine tests run is first checked with the persona kind's own
validation, so the behaviour pinned here is that of specs the product accepts.
"""

import copy
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from governance.registry import get_kind
from personas import engine, flows
from personas.engine import MAX_JUMPS_BACK, Outcome, Reply, Turn

EXAMPLES = Path(flows.__file__).with_name("examples")
SUPPORT: dict[str, Any] = json.loads((EXAMPLES / "support.json").read_text())
NAME = "Sam"
HANDOVER = "A colleague will take it from here."


def validate(spec: dict[str, Any]) -> dict[str, list[str]]:
    return get_kind("persona").validate(spec)


def support() -> dict[str, Any]:
    """The support example without its style guide reference (so validating it needs no database)."""
    spec = copy.deepcopy(SUPPORT)
    del spec["style_guide"]
    return spec


def flow(flow_id: str, *steps: dict[str, Any], **trigger: Any) -> dict[str, Any]:
    return {"id": flow_id, "trigger": trigger or {"keywords": [flow_id]}, "steps": list(steps)}


def persona(*flows_: dict[str, Any], **extra: Any) -> dict[str, Any]:
    spec = {"greeting": "Hi, I'm {{persona_name}}.", "fallback": "Sorry?", "handover": HANDOVER, "flows": list(flows_)}
    spec.update(extra)
    assert validate(spec) == {}, "the test's own spec must be a valid persona"
    return spec


def talk(spec: dict[str, Any], *messages: str) -> list[Turn]:
    """The greeting turn and one turn per message, threading the state through."""
    turns = [engine.greet(spec, NAME)]
    for text in messages:
        before = copy.deepcopy(turns[-1].state)
        turns.append(engine.receive(spec, turns[-1].state, text, NAME))
        assert turns[-2].state == before, "receive must not change the state it was given"
    return turns


def texts(turn: Turn) -> list[str]:
    return [reply.text for reply in turn.replies]


# --- validation -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_support_example_is_valid_but_for_the_style_guide_an_empty_database_lacks() -> None:
    assert validate(copy.deepcopy(SUPPORT)) == {"style_guide": ["There is no style guide 'brand-voice' v1."]}
    assert validate(support()) == {}
    assert flows.validate_persona(support()) == {}


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        target = spec
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


def _delete(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        target = spec
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return mutate


ORDER, RETURNS = ["flows", 0], ["flows", 1]
ASK_ORDER, ASK_EMAIL, DONE = [*ORDER, "steps", 0], [*ORDER, "steps", 1], [*ORDER, "steps", 2]
ASK_ITEM, ASK_REASON, ROUTE, LABEL = ([*RETURNS, "steps", i] for i in range(4))


@pytest.mark.parametrize(
    ("mutate", "path", "start", "fragment"),
    [
        pytest.param(
            _set([*ASK_EMAIL, "id"], "ask_order"),
            "flows[0].steps[1].id",
            "flow 'order_status', step 'ask_order'",
            "used by another step",
            id="duplicate-step-id",
        ),
        pytest.param(
            _set([*ASK_ORDER, "next"], "nowhere"),
            "flows[0].steps[0].next",
            "flow 'order_status', step 'ask_order'",
            "there is no step 'nowhere'",
            id="next-missing",
        ),
        pytest.param(
            _set([*ROUTE, "cases", 0, "goto"], "nowhere"),
            "flows[1].steps[2].cases[0].goto",
            "flow 'returns', step 'route'",
            "there is no step 'nowhere'",
            id="goto-missing",
        ),
        pytest.param(
            _set([*ROUTE, "default"], "nowhere"),
            "flows[1].steps[2].default",
            "flow 'returns', step 'route'",
            "there is no step 'nowhere'",
            id="default-missing",
        ),
        pytest.param(
            _set([*ROUTE, "cases", 0, "when"], "slots.reason =="),
            "flows[1].steps[2].cases[0].when",
            "flow 'returns', step 'route'",
            "does not compile: Syntax error at line 1, column 16",
            id="cel-syntax",
        ),
        pytest.param(
            _set([*ORDER, "trigger", "patterns"], ["(?<=my )order"]),
            "flows[0].trigger.patterns[0]",
            "flow 'order_status'",
            "the pattern does not compile",
            id="trigger-pattern-not-re2",
        ),
        pytest.param(
            _set([*ASK_ORDER, "validation", "pattern"], "(so-\\d{5}"),
            "flows[0].steps[0].validation.pattern",
            "flow 'order_status', step 'ask_order'",
            "the pattern does not compile",
            id="slot-pattern",
        ),
        pytest.param(
            _set([*ORDER, "trigger"], {"keywords": []}),
            "flows[0].trigger",
            "flow 'order_status'",
            "needs at least one keyword, pattern or example",
            id="empty-trigger",
        ),
        pytest.param(
            _set([*DONE, "text"], "We'll send the {{item}}."),
            "flows[0].steps[2].text",
            "flow 'order_status', step 'done'",
            "never fills: item",
            id="slot-of-another-flow",
        ),
        pytest.param(
            _set([*DONE, "text"], "Thanks for {{ order_id }} {{"),
            "flows[0].steps[2].text",
            "flow 'order_status', step 'done'",
            "a '{{' or '}}' is not part of a {{slot}} placeholder",
            id="stray-braces",
        ),
        pytest.param(
            _set(["greeting"], "Hi {{order_id}}"),
            "greeting",
            "the template names",
            "can be used): order_id",
            id="greeting-names-flow-slot",
        ),
        pytest.param(
            _delete([*ASK_REASON, "choices"]),
            "flows[1].steps[1]",
            "flow 'returns', step 'ask_reason'",
            "'choices' is a required property",
            id="choice-no-choices",
        ),
        pytest.param(
            _set([*ASK_ITEM, "choices"], ["mug"]),
            "flows[1].steps[0]",
            "flow 'returns', step 'ask_item'",
            "should not be valid under {'required': ['choices']}",
            id="choices-on-text-slot",
        ),
        pytest.param(
            _set([*ASK_EMAIL, "validation"], {"min": 3}),
            "flows[0].steps[1].validation.min",
            "flow 'order_status', step 'ask_email'",
            "'min' does not apply to slots of type email",
            id="min-on-email-slot",
        ),
        pytest.param(
            _set([*ASK_ITEM, "validation"], {"min_length": 9, "max_length": 3}),
            "flows[1].steps[0].validation",
            "flow 'returns', step 'ask_item'",
            "min_length is greater than max_length",
            id="text-lengths",
        ),
        pytest.param(
            _delete([*LABEL, "text"]),
            "flows[1].steps[3]",
            "flow 'returns', step 'label'",
            "'text' is a required property",
            id="say-without-text",
        ),
        pytest.param(
            _set([*LABEL, "type"], "shout"),
            "flows[1].steps[3].type",
            "flow 'returns', step 'label'",
            "'shout' is not one of",
            id="unknown-step-type",
        ),
        pytest.param(
            _set(["flows", 2, "id"], "returns"),
            "flows[2].id",
            "flow 'returns'",
            "another flow has this id",
            id="duplicate-flow-id",
        ),
        pytest.param(
            _set(["llm_phrasing"], {"enabled": True, "provider": "openai"}),
            "llm_phrasing.model",
            "LLM phrasing",
            "needs a model",
            id="llm-phrasing",
        ),
    ],
)
def test_a_broken_persona_gets_one_error_at_the_path_naming_flow_and_step(
    mutate: Callable[[dict[str, Any]], None], path: str, start: str, fragment: str
) -> None:
    spec = support()
    mutate(spec)
    errors = validate(spec)
    assert list(errors) == [path]
    (message,) = errors[path]
    assert message.startswith(start)
    assert fragment in message


@pytest.mark.parametrize(
    ("slot_type", "validation", "path", "fragment"),
    [
        ("number", {"min": "1"}, "validation.min", "must be a number"),
        ("number", {"min": 5, "max": 1}, "validation", "min is greater than max"),
        ("number", {"pattern": "\\d+"}, "validation.pattern", "'pattern' does not apply to slots of type number"),
        (
            "date",
            {"min": "14/03/2026"},
            "validation.min",
            "must be a date written YYYY-MM-DD, or today, today-18y, today+30d ...",
        ),
        ("date", {"min": "2026-02-01", "max": "2026-01-01"}, "validation", "min is after max"),
        ("text", {"integer": True}, "validation.integer", "'integer' does not apply to slots of type text"),
    ],
)
def test_slot_validation_must_fit_the_slot_type(
    slot_type: str, validation: dict[str, Any], path: str, fragment: str
) -> None:
    spec = support()
    spec["flows"][0]["steps"][0].update(slot_type=slot_type, validation=validation)
    assert flows.validate_persona(spec) == {
        f"flows[0].steps[0].{path}": [f"flow 'order_status', step 'ask_order': {fragment}"]
    }


def test_templates_may_name_slots_set_or_asked_anywhere_in_the_flow_and_the_persona_name() -> None:
    spec = persona(
        flow(
            "greet",
            {"id": "early", "type": "say", "text": "{{persona_name}} here; {{later}} {{tag}} renders empty for now."},
            {"id": "tag", "type": "set", "slot": "tag", "value": "vip"},
            {"id": "ask", "type": "ask", "slot": "later", "prompt": "Name?"},
        )
    )
    assert flows.validate_persona(spec) == {}
    assert texts(talk(spec, "greet")[1]) == ["Sam here;   renders empty for now.", "Name?"]


# --- determinism ----------------------------------------------------------------------------------------------

CONVERSATION = (
    "hello?",
    "Where's my package",
    "SO-1",
    "so-12345",
    "me@example.com",
    "I want to return something",
    "mug",
    "2",
    "This is unacceptable",
    "It broke twice",
)


def test_the_same_spec_and_messages_give_the_same_replies_and_states() -> None:
    spec = support()
    first, second = talk(spec, *CONVERSATION), talk(spec, *CONVERSATION)

    def record(turns: list[Turn]) -> list[Any]:
        return [(t.replies, t.state, t.outcome, t.intent, t.matched_flow) for t in turns]

    assert record(first) == record(second)
    assert texts(first[5]) == [
        "Thanks! I've asked the warehouse about so-12345 and we'll write to me@example.com within a day."
    ]
    assert [t.matched_flow for t in first] == ["", "", "order_status", "", "", "", "returns", "", "", "complaint", ""]
    assert first[-1].outcome == Outcome(escalate="Complaint: It broke twice")
    assert first[-1].state["slots"] == {
        "order_id": "so-12345",
        "email": "me@example.com",
        "item": "mug",
        "reason": "wrong size",
        "details": "It broke twice",
    }


# --- slot answers ---------------------------------------------------------------------------------------------

DATES = (
    "2026-03-14",
    "14/03/2026",
    "14.03.2026",
    "14 March 2026",
    "14 mar 2026",
    "March 14 2026",
    "March 14, 2026",
    "Mar 14, 2026",
    "  14   March   2026 ",
)
CHOICES = ["damaged", "wrong size", "changed my mind"]
NOT_A_CHOICE = "Please choose one of: damaged, wrong size, changed my mind."
NOT_A_DATE = "Please give a date, like 2026-03-14."


@pytest.mark.parametrize(
    ("step", "text", "value", "problem"),
    [
        ({}, "  anything  ", "anything", ""),
        ({}, "   ", None, "Please type an answer."),
        ({"validation": {"pattern": "(?i)so-\\d{5}"}}, "SO-12345", "SO-12345", ""),
        ({"validation": {"pattern": "(?i)so-\\d{5}"}}, "SO-123456", None, "That doesn't look right."),
        ({"validation": {"min_length": 3}}, "ab", None, "Please use at least 3 characters."),
        ({"validation": {"min_length": 3}}, "abc", "abc", ""),
        ({"validation": {"max_length": 3}}, "abcd", None, "Please use at most 3 characters."),
        ({"slot_type": "number"}, "1,234", 1234, ""),
        ({"slot_type": "number"}, "-1,234.5", -1234.5, ""),
        ({"slot_type": "number"}, "12,34", None, "Please answer with a number."),
        ({"slot_type": "number"}, "ten", None, "Please answer with a number."),
        ({"slot_type": "number", "validation": {"integer": True}}, "2.5", None, "Please answer with a whole number."),
        ({"slot_type": "number", "validation": {"min": 1}}, "0", None, "The number must be at least 1."),
        ({"slot_type": "number", "validation": {"max": 10}}, "10.5", None, "The number must be at most 10."),
        ({"slot_type": "number", "validation": {"min": 1, "max": 10}}, "10", 10, ""),
        ({"slot_type": "email"}, " me@example.com ", "me@example.com", ""),
        ({"slot_type": "email"}, "me@example", None, "Please give an e-mail address, like name@example.com."),
        ({"slot_type": "email"}, "me at example.com", None, "Please give an e-mail address, like name@example.com."),
        ({"slot_type": "choice", "choices": CHOICES}, "Wrong Size!", "wrong size", ""),
        ({"slot_type": "choice", "choices": CHOICES}, "DAMAGED", "damaged", ""),
        ({"slot_type": "choice", "choices": CHOICES}, "3", "changed my mind", ""),
        ({"slot_type": "choice", "choices": CHOICES}, "4", None, NOT_A_CHOICE),
        ({"slot_type": "choice", "choices": CHOICES}, "0", None, NOT_A_CHOICE),
        ({"slot_type": "choice", "choices": CHOICES}, "broken", None, NOT_A_CHOICE),
        *(({"slot_type": "date"}, text, "2026-03-14", "") for text in DATES),
        ({"slot_type": "date"}, "31/02/2026", None, NOT_A_DATE),
        ({"slot_type": "date"}, "03/14/2026", None, NOT_A_DATE),
        ({"slot_type": "date", "validation": {"min": "2026-01-01"}}, "2026-01-01", "2026-01-01", ""),
        (
            {"slot_type": "date", "validation": {"min": "2026-01-01"}},
            "31/12/2025",
            None,
            "The date must be on or after 2026-01-01.",
        ),
        (
            {"slot_type": "date", "validation": {"max": "2026-12-31"}},
            "1 January 2027",
            None,
            "The date must be on or before 2026-12-31.",
        ),
    ],
)
def test_parse_answer(step: dict[str, Any], text: str, value: Any, problem: str) -> None:
    answer = flows.parse_answer(step, text)
    assert (answer.ok, answer.value, answer.problem) == (not problem, value, problem)
    assert type(answer.value) is type(value)


@pytest.mark.parametrize(
    ("ask", "bad", "problem", "good", "value"),
    [
        ({"validation": {"pattern": "[A-Z]{2}\\d{3}"}}, "ab123", "That doesn't look right.", "AB123", "AB123"),
        (
            {"slot_type": "number", "validation": {"min": 1, "integer": True}},
            "0",
            "The number must be at least 1.",
            "1,500",
            1500,
        ),
        ({"slot_type": "email"}, "nope", "Please give an e-mail address, like name@example.com.", "a@b.co", "a@b.co"),
        ({"slot_type": "choice", "choices": CHOICES}, "meh", NOT_A_CHOICE, "2", "wrong size"),
        (
            {"slot_type": "date", "validation": {"max": "2026-12-31"}},
            "2027-01-01",
            "The date must be on or before 2026-12-31.",
            "14 March 2026",
            "2026-03-14",
        ),
    ],
)
def test_an_invalid_answer_is_reprompted_and_a_valid_one_fills_the_slot(
    ask: dict[str, Any], bad: str, problem: str, good: str, value: Any
) -> None:
    spec = persona(
        flow(
            "form",
            {"id": "ask", "type": "ask", "slot": "x", "prompt": "X?", "reprompt": "Again, {{persona_name}}.", **ask},
            {"id": "done", "type": "end", "text": "Got {{x}}."},
        )
    )
    _, started, reprompted, answered = talk(spec, "form", bad, good)
    assert started.replies == [Reply("X?", "prompt", "form", "ask")]
    assert reprompted.replies == [Reply(f"{problem} Again, Sam.", "reprompt", "form", "ask")]
    assert reprompted.state == {"flow": "form", "step": "ask", "slots": {}, "attempts": 1, "fallbacks": 0}
    assert reprompted.outcome == Outcome()
    assert answered.state["slots"] == {"x": value}
    assert answered.replies == [Reply(f"Got {flows.render('{{x}}', {'x': value})}.", "end", "form", "done")]
    assert (answered.state["flow"], answered.state["step"], answered.state["attempts"]) == (None, None, 0)


@pytest.mark.parametrize("max_attempts", [None, 1, 2])
def test_max_attempts_invalid_answers_hand_over(max_attempts: int | None) -> None:
    ask: dict[str, Any] = {"id": "ask_n", "type": "ask", "slot": "n", "slot_type": "number", "prompt": "How many?"}
    if max_attempts is not None:
        ask["max_attempts"] = max_attempts
    spec = persona(flow("count", ask))
    limit = max_attempts or 3  # the schema's default
    turns = talk(spec, "count", *["lots"] * limit)
    assert len(turns) == 2 + limit
    for turn in turns[2:-1]:  # without a reprompt, the problem is followed by the prompt again
        assert turn.replies == [Reply("Please answer with a number. How many?", "reprompt", "count", "ask_n")]
        assert turn.outcome == Outcome()
    last = turns[-1]
    assert last.replies == [Reply(HANDOVER, "handover", "count", "ask_n")]
    assert last.outcome == Outcome(
        escalate=f"No valid answer for 'n' after {limit} attempts (flow 'count', step 'ask_n')."
    )
    assert (last.state["flow"], last.state["step"]) == (None, None)


# --- branches -------------------------------------------------------------------------------------------------


def _branching(default: str | None) -> dict[str, Any]:
    route: dict[str, Any] = {
        "id": "route",
        "type": "branch",
        "cases": [
            {"when": "slots.n > 100", "goto": "big"},
            {"when": "slots.n > 50 || slots.n < 0", "goto": "odd"},
        ],
    }
    if default:
        route["default"] = default
    return persona(
        flow(
            "size",
            {"id": "ask_n", "type": "ask", "slot": "n", "slot_type": "number", "prompt": "A number?"},
            route,
            {"id": "medium", "type": "say", "text": "medium {{n}}", "next": "done"},
            {"id": "big", "type": "say", "text": "big {{n}}", "next": "done"},
            {"id": "odd", "type": "say", "text": "odd {{n}}", "next": "done"},
            {"id": "small", "type": "say", "text": "small {{n}}"},
            {"id": "done", "type": "end", "text": "bye"},
        )
    )


@pytest.mark.parametrize(
    ("default", "answer", "said"),
    [
        (None, "1,000.5", "big 1000.5"),  # the first matching case wins, a double compares with an int
        (None, "75", "odd 75"),
        (None, "-3", "odd -3"),
        (None, "20", "medium 20"),  # no case, no default: the following step
        ("small", "20", "small 20"),  # no case: the default
        ("small", "101", "big 101"),
    ],
)
def test_branch_on_cel_over_slots(default: str | None, answer: str, said: str) -> None:
    turn = talk(_branching(default), "size", answer)[-1]
    assert texts(turn) == [said, "bye"]
    assert turn.outcome == Outcome()


@pytest.mark.parametrize(
    ("when", "error"),
    [
        ("slots.x > 3", "no matching overload for '>' applied to (string, int)"),
        ("slots.missing == 1", "no such member in mapping: 'missing'"),
        ("slots.x", "the condition returned string, not bool"),
    ],
)
def test_a_branch_condition_failing_at_run_time_hands_over_fail_safe(when: str, error: str) -> None:
    spec = persona(
        flow(
            "check",
            {"id": "ask_x", "type": "ask", "slot": "x", "prompt": "X?"},
            {"id": "route", "type": "branch", "cases": [{"when": when, "goto": "yes"}], "default": "no"},
            {"id": "yes", "type": "end", "text": "yes"},
            {"id": "no", "type": "end", "text": "no"},
        )
    )
    turn = talk(spec, "check", "abc")[-1]
    assert turn.replies == [Reply(HANDOVER, "handover", "check", "route")]
    assert turn.outcome == Outcome(
        escalate=f"Flow 'check', step 'route': the condition {when!r} failed ({error}); handed to a person (fail-safe)."
    )
    assert (turn.state["flow"], turn.state["step"]) == (None, None)


# --- fallback -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_fallbacks", [None, 1, 4])
def test_consecutive_unmatched_messages_hand_over_and_a_match_resets_the_count(max_fallbacks: int | None) -> None:
    extra = {} if max_fallbacks is None else {"max_fallbacks": max_fallbacks}
    spec = persona(flow("hours", {"id": "say", "type": "say", "text": "Open 9 to 5."}), **extra)
    limit = max_fallbacks or 3  # the schema's default
    misses = ["blah"] * (limit - 1)
    turns = talk(spec, *misses, "hours", *misses, "blah", "blah")[1:]
    assert [texts(t) for t in turns] == [
        *[["Sorry?"]] * (limit - 1),
        ["Open 9 to 5."],
        *[["Sorry?"]] * (limit - 1),
        [HANDOVER],
        ["Sorry?"] if limit > 1 else [HANDOVER],  # the count starts again after a hand-over
    ]
    reason = f"{limit} messages in a row matched no flow."
    assert [t.outcome.escalate for t in turns] == ["" for _ in range(2 * limit - 1)] + [reason] + (
        [""] if limit > 1 else [reason]
    )
    assert turns[2 * limit - 1].replies[0].kind == "handover"


# --- built-in intents -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("can I talk to a human?", "person"),
        ("Could I speak with someone", "person"),
        ("I want a REAL person", "person"),
        ("live agent", "person"),
        ("Cancel!", "cancel"),
        ("never mind.", "cancel"),
        ("I want to cancel my order", None),
        ("I want to stop my subscription", None),
        ("Start over", "restart"),
        ("from the beginning", "restart"),
        ("let's start over with my order", None),
        ("where is my order", None),
    ],
)
def test_builtin_intent(text: str, intent: str | None) -> None:
    assert engine.builtin_intent(text) == intent


def test_asking_for_a_person_mid_flow_hands_over() -> None:
    turn = talk(support(), "where is my order", "can I talk to a human?")[-1]
    assert turn.intent == "person"
    assert turn.replies == [Reply(SUPPORT["handover"], "handover")]
    assert turn.outcome == Outcome(escalate="The user asked for a person.")
    assert (turn.state["flow"], turn.state["step"]) == (None, None)


@pytest.mark.parametrize(
    ("messages", "said"),
    [(None, flows.DEFAULT_MESSAGES["cancelled"]), ({"cancelled": "Stopped, {{persona_name}}."}, "Stopped, Sam.")],
)
def test_cancel_mid_flow_stops_it(messages: dict[str, str] | None, said: str) -> None:
    spec = support()
    if messages:
        spec["messages"] = messages
    _, _, asked, cancelled, after = talk(spec, "where is my order", "SO-12345", "cancel", "me@example.com")
    assert asked.state["step"] == "ask_email"
    assert cancelled.intent == "cancel"
    assert cancelled.replies == [Reply(said, "intent")]
    assert cancelled.outcome == Outcome()
    assert (cancelled.state["flow"], cancelled.state["step"]) == (None, None)
    assert after.replies == [Reply(SUPPORT["fallback"], "fallback")]  # no longer an answer to ask_email


def test_a_sentence_mentioning_cancel_is_an_answer_not_the_cancel_intent() -> None:
    turn = talk(support(), "where is my order", "I want to cancel my order")[-1]
    assert turn.intent == ""
    assert texts(turn) == ["That doesn't look right. Order numbers look like SO-12345."]
    assert (turn.state["flow"], turn.state["step"], turn.state["attempts"]) == ("order_status", "ask_order", 1)


def test_start_over_forgets_the_slots_and_greets_again() -> None:
    spec = support()
    spec["messages"] = {"restarted": "Fresh start."}
    _, _, filled, _, restarted = talk(spec, "where is my order", "SO-12345", "blah", "Start over!")
    assert filled.state["slots"] == {"order_id": "SO-12345"}
    assert restarted.intent == "restart"
    assert restarted.replies == [
        Reply("Fresh start.", "intent"),
        Reply("Hi, I'm Sam! I can check an order, start a return or take a complaint.", "greeting"),
    ]
    assert restarted.state == engine.initial_state()


# --- triggers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "text", "score"),
    [
        ({"keywords": ["order"]}, "About my ORDER, please", 1.0),
        ({"keywords": ["order"]}, "my orders", 0.0),
        ({"keywords": ["order"]}, "reorder", 0.0),
        ({"keywords": ["order status"]}, "what's the Order  Status?", 1.0),
        ({"keywords": ["order status"]}, "status of my order", 0.0),
        ({"patterns": ["where('?s| is) my (order|package)"]}, "WHERE'S MY PACKAGE", 1.0),
        ({"patterns": ["where('?s| is) my (order|package)"]}, "where was my order", 0.0),
        ({"examples": ["where is my order"]}, "so where my order", 1.0),  # common words ("is", "my") aside
        ({"examples": ["where is my order"]}, "my order", 0.0),  # 0.5 is below the threshold
        ({"examples": ["I want to return something"]}, "I want to cancel my order", 0.0),  # only common words shared
        ({"examples": ["return damaged blue winter shoes"]}, "return the blue winter coat", 0.6),  # 3 of 5: enough
        ({"examples": ["can you"]}, "can you do it", 1.0),  # an example of common words only keeps them
        ({"examples": ["I want to return something", "where is my order"]}, "where is it", 0.0),
    ],
)
def test_trigger_score(trigger: dict[str, Any], text: str, score: float) -> None:
    assert flows.trigger_score(trigger, text) == pytest.approx(score)


@pytest.mark.parametrize(
    ("text", "chosen"),
    [
        ("help me", "first"),  # a tie: the first flow wins
        ("pay my bill", "billing"),  # a pattern (1.0) beats the first flow's partial example (0.75)
        ("nothing here", None),
    ],
)
def test_match_flow(text: str, chosen: str | None) -> None:
    candidates = [
        flow("first", {"id": "s", "type": "end"}, keywords=["help"], examples=["pay my bill today"]),
        flow("second", {"id": "s", "type": "end"}, keywords=["help"]),
        flow("billing", {"id": "s", "type": "end"}, patterns=["\\bbill\\b"]),
    ]
    found = flows.match_flow(candidates, text)
    assert (found["id"] if found else None) == chosen


# --- templates and the other steps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "slots", "rendered"),
    [
        ("Hi {{name}}!", {"name": "{{secret}}", "secret": "s3cr3t"}, "Hi {{secret}}!"),
        ("[{{ missing }}]", {}, "[]"),
        ("[{{none}}]", {"none": None}, "[]"),
        ("{{n}} {{m}} {{zero}}", {"n": 3.0, "m": 2.5, "zero": 0}, "3 2.5 0"),
        ("{{yes}}/{{no}}", {"yes": True, "no": False}, "yes/no"),
        ("{not a slot} {{ 9x }}", {"9x": "v"}, "{not a slot} {{ 9x }}"),
    ],
)
def test_render_is_one_pass(template: str, slots: dict[str, Any], rendered: str) -> None:
    assert flows.render(template, slots) == rendered


def test_set_steps_and_end_with_close() -> None:
    spec = persona(
        flow(
            "note",
            {"id": "ask", "type": "ask", "slot": "said", "prompt": "Say something."},
            {"id": "count", "type": "set", "slot": "count", "value": 3},
            {"id": "vip", "type": "set", "slot": "vip", "value": True},
            {"id": "tag", "type": "set", "slot": "tag", "value": "{{persona_name}}-{{count}}: {{said}}"},
            {"id": "echo", "type": "say", "text": "{{tag}} vip={{vip}}"},
            {"id": "bye", "type": "end", "text": "Bye.", "close": True},
        )
    )
    turn = talk(spec, "note", "{{count}} {{persona_name}}")[-1]
    assert turn.state["slots"] == {
        "said": "{{count}} {{persona_name}}",
        "count": 3,
        "vip": True,
        "tag": "Sam-3: {{count}} {{persona_name}}",
    }
    assert turn.replies == [
        Reply("Sam-3: {{count}} {{persona_name}} vip=yes", "say", "note", "echo"),
        Reply("Bye.", "end", "note", "bye"),
    ]
    assert turn.outcome == Outcome(close=True)


def test_end_without_close_leaves_the_conversation_open() -> None:
    turn = talk(persona(flow("quiet", {"id": "bye", "type": "end"})), "quiet")[-1]
    assert turn.replies == []
    assert turn.outcome == Outcome()
    assert turn.matched_flow == "quiet"
    assert turn.state["flow"] is None


@pytest.mark.parametrize(("label", "expected_label"), [(None, "production"), ("canary", "canary")])
def test_handoff_renders_the_agent_input(label: str | None, expected_label: str) -> None:
    inputs = {"email": "{{email}}", "note": "from {{persona_name}} about {{email}}"}
    handoff: dict[str, Any] = {"id": "to_agent", "type": "handoff", "agent": "billing-bot", "text": "One moment."}
    handoff["input"] = inputs
    if label:
        handoff["label"] = label
    spec = persona(
        flow("bill", {"id": "ask", "type": "ask", "slot": "email", "slot_type": "email", "prompt": "E-mail?"}, handoff)
    )
    turn = talk(spec, "bill", "a@b.co")[-1]
    assert turn.replies == [Reply("One moment.", "say", "bill", "to_agent")]
    assert turn.outcome == Outcome(
        handoff={
            "agent": "billing-bot",
            "label": expected_label,
            "flow": "bill",
            "step": "to_agent",
            "input": {"email": "a@b.co", "note": "from Sam about a@b.co"},
            "reply": "{{result.answer}}",
        }
    )
    assert turn.state["flow"] is None


@pytest.mark.parametrize(("text", "said"), [(None, HANDOVER), ("Over to {{persona_name}}.", "Over to Sam.")])
def test_escalate_step_renders_its_reason(text: str | None, said: str) -> None:
    step = {"id": "up", "type": "escalate", "reason": "Refund of {{amount}} asked"}
    if text:
        step["text"] = text
    spec = persona(flow("refund", {"id": "amt", "type": "set", "slot": "amount", "value": 12.5}, step))
    turn = talk(spec, "refund")[-1]
    assert turn.replies == [Reply(said, "handover", "refund", "up")]
    assert turn.outcome == Outcome(escalate="Refund of 12.5 asked")


@pytest.mark.parametrize(
    ("step", "said"),
    [
        ({"id": "loop", "type": "branch", "cases": [{"when": "true", "goto": "loop"}]}, 0),
        ({"id": "loop", "type": "say", "text": "again", "next": "loop"}, MAX_JUMPS_BACK + 1),
    ],
)
def test_a_flow_looping_without_waiting_is_handed_over(step: dict[str, Any], said: int) -> None:
    turn = talk(persona(flow("spin", step)), "spin")[-1]
    assert texts(turn) == ["again"] * said + [HANDOVER]
    assert turn.replies[-1].kind == "handover"
    assert turn.outcome == Outcome(
        escalate=f"Flow 'spin' jumped back {MAX_JUMPS_BACK} times without waiting for the user: a loop?"
    )
    assert turn.state["flow"] is None


def test_a_superscript_digit_is_not_a_choice_number() -> None:
    step = {"id": "ask", "type": "ask", "slot": "c", "slot_type": "choice", "choices": ["a", "b", "c"], "prompt": "?"}
    answer = flows.parse_answer(step, "²")
    assert (answer.ok, answer.problem) == (False, "Please choose one of: a, b, c.")


def test_a_long_flow_without_jumps_back_is_not_a_loop() -> None:
    spec = persona(flow("tour", *({"id": f"s{i}", "type": "say", "text": f"Fact {i}."} for i in range(150))))
    assert get_kind("persona").validate({k: v for k, v in spec.items() if k != "style_guide"}) == {}
    turn = engine.receive(spec, engine.initial_state(), "tour", "Sam")
    assert turn.outcome == Outcome()
    assert texts(turn)[-1] == "Fact 149."


@pytest.mark.parametrize(
    ("bound", "today", "expected"),
    [
        ("today", dt.date(2026, 11, 29), dt.date(2026, 11, 29)),
        ("today-18y", dt.date(2026, 11, 29), dt.date(2008, 11, 29)),
        ("today-18y", dt.date(2028, 2, 29), dt.date(2010, 2, 28)),
        ("today+30d", dt.date(2026, 11, 29), dt.date(2026, 12, 29)),
        ("today-6m", dt.date(2026, 8, 31), dt.date(2026, 2, 28)),
        ("2026-03-14", None, dt.date(2026, 3, 14)),
        ("yesterday", None, None),
        ("today-18x", None, None),
    ],
)
def test_date_bounds_may_be_relative_to_the_day_of_the_answer(bound: str, today: Any, expected: Any) -> None:
    assert flows._date(bound, today) == expected


def test_an_adult_only_date_moves_with_the_calendar() -> None:
    step = {
        "id": "dob",
        "type": "ask",
        "slot": "dob",
        "slot_type": "date",
        "prompt": "?",
        "validation": {"max": "today-18y"},
    }
    eighteen_today = flows._shift(dt.date.today(), -1, 18, "y")
    assert flows.parse_answer(step, eighteen_today.isoformat()).ok
    assert not flows.parse_answer(step, (eighteen_today + dt.timedelta(days=1)).isoformat()).ok
    assert get_kind("persona").validate(persona(flow("kyc", step))) == {}


# --- the message that starts a flow ---------------------------------------------------------------------------

SHOP: dict[str, Any] = json.loads((EXAMPLES / "shop-assistant.json").read_text())


def shop() -> dict[str, Any]:
    """The demo's support persona (``make run``), without its style guide reference."""
    spec = copy.deepcopy(SHOP)
    del spec["style_guide"]
    assert validate(spec) == {}
    return spec


@pytest.mark.parametrize(
    ("first", "said", "slots"),
    [
        ("I want to restock SKU-123", ["How many units of SKU-123?"], {"sku": "SKU-123"}),
        ("restock (sku-042), please!", ["How many units of sku-042?"], {"sku": "sku-042"}),
        ("I want to restock", ["Which item? SKUs look like SKU-123."], {}),
        ("restock SKU-1234", ["Which item? SKUs look like SKU-123."], {}),  # not a SKU: asked, not guessed
        ("restock SKU-123 or SKU-456", ["Which item? SKUs look like SKU-123."], {}),  # two: which one?
    ],
)
def test_the_message_starting_a_flow_fills_its_first_slot_when_it_holds_a_valid_value(
    first: str, said: list[str], slots: dict[str, Any]
) -> None:
    turn = talk(shop(), first)[-1]
    assert (turn.matched_flow, texts(turn), turn.state["slots"]) == ("restock", said, slots)
    assert turn.state["step"] == ("ask_quantity" if slots else "ask_sku")


def test_a_first_message_holding_every_answer_goes_straight_to_the_handoff() -> None:
    turn = talk(shop(), "Where is my order SO-12345?")[-1]
    assert texts(turn) == ["Let me look up SO-12345."]
    assert turn.outcome.handoff is not None
    assert turn.outcome.handoff["input"] == {"order_id": "SO-12345"}


def test_only_the_first_questions_are_answered_from_the_first_message() -> None:
    """Leading say steps do not stop the filling; the first question asked does, and numbers are always asked."""
    ask_id = {"id": "ask_id", "type": "ask", "slot": "id", "prompt": "Your ID?", "validation": {"pattern": "X\\d{3}"}}
    ask_name = {
        "id": "ask_name",
        "type": "ask",
        "slot": "name",
        "prompt": "Your name?",
        "validation": {"pattern": "[A-Za-z ]{2,40}"},
    }
    ask_count = {"id": "ask_count", "type": "ask", "slot": "count", "slot_type": "number", "prompt": "How many?"}
    hello = {"id": "hello", "type": "say", "text": "Let's check."}
    spec = persona(
        flow("check", hello, ask_id, ask_count, keywords=["check"]),
        flow("named", ask_name, ask_id, keywords=["named"]),
    )
    checked = talk(spec, "check 12 of X123")[-1]
    assert (texts(checked), checked.state["slots"]) == (["Let's check.", "How many?"], {"id": "X123"})
    named = talk(spec, "named X123")[-1]  # the name is asked for, so the ID is too, later
    assert (texts(named), named.state["slots"], named.state["step"]) == (["Your name?"], {}, "ask_name")
    assert texts(engine.receive(spec, named.state, "Jane Doe", NAME)) == ["Your ID?"]


@pytest.mark.parametrize(
    ("item", "reason", "said"),
    [
        (
            "the lamp",
            "damaged",
            "I'm sorry it arrived damaged! We'll send a replacement for your item (the lamp) today, and you can keep "
            "the damaged one.",
        ),
        (
            "mug",
            "damaged",
            "I'm sorry it arrived damaged! We'll send a replacement for your item (mug) today, and you can keep the "
            "damaged one.",
        ),
        (
            "my blue shoes",
            "wrong size",
            "No problem. I've e-mailed you a free return label for your item (my blue shoes).",
        ),
        ("the lamp", "changed my mind", "No problem. I've e-mailed you a free return label for your item (the lamp)."),
    ],
)
@pytest.mark.parametrize("example", ["shop-assistant", "support"])
def test_the_returns_flow_reads_correctly_for_any_item(example: str, item: str, reason: str, said: str) -> None:
    spec = shop() if example == "shop-assistant" else support()
    last = talk(spec, "I want to return something", item, reason)[-1]
    assert texts(last) == [said]
