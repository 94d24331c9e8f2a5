"""Guardrail policies: the spec schema, CEL conditions (compile errors with positions, evaluation, numbers), and
the evaluation rules (scope, order, first terminal match, redact accumulation, default allow, fail-safe deny)."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from governance.checks import Finding
from governance.policies import (
    FACTS,
    MAX_CONDITION_LENGTH,
    POLICY_SCHEMA,
    ConditionError,
    ConditionRuntimeError,
    Decision,
    PolicyRef,
    check_policy_tests,
    compile_condition,
    evaluate,
    in_scope,
    validate_policy_spec,
)


def spec(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"checkpoint": "action", "condition": "true", "effect": "deny", "severity": "high"}
    return {**base, **fields}


def policy(slug: str, version: int = 1, **fields: Any) -> PolicyRef:
    return PolicyRef(slug=slug, version=version, spec=spec(**fields))


ACTION: dict[str, Any] = {
    "tool": "payments.refund",
    "risk": "high",
    "side_effect": "write",
    "args": {"amount": 1500.0, "currency": "EUR", "order_id": "A-1", "note": "customer asked twice"},
    "agent": "billing-bot",
    "autonomy": "supervised",
    "budget": {
        "steps_used": 7,
        "steps_limit": 20,
        "tokens_used": 9000,
        "tokens_limit": 10000,
        "cost_used": 0.42,
        "cost_limit": 2.0,
    },
    "pii": {"email": 0, "phone": 0, "card": 0, "iban": 0},
    "pii_types": [],
    "pii_found": False,
    "injection": False,
    "injection_phrases": [],
}

INPUT: dict[str, Any] = {
    "text": "Hi, I want a refund for order A-1. My lawyer is in copy. Card 4111 1111 1111 1111.",
    "channel": "conversation",
    "persona": "support",
    "agent": "",
    "pii": {"email": 0, "phone": 0, "card": 1, "iban": 0},
    "pii_types": ["card"],
    "pii_found": True,
    "injection": False,
    "injection_phrases": [],
    "length": 83,
}


# --- the spec schema ------------------------------------------------------------------------------------------


def test_the_schema_is_draft_2020_12_closed_and_every_property_is_described() -> None:
    Draft202012Validator.check_schema(POLICY_SCHEMA)
    assert POLICY_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert POLICY_SCHEMA["additionalProperties"] is False

    def walk(node: dict[str, Any], where: str) -> None:
        for name, sub in node.get("properties", {}).items():
            assert sub.get("description"), f"{where}.{name} has no description"
            walk(sub, f"{where}.{name}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{where}[]")

    walk(POLICY_SCHEMA, "spec")
    assert POLICY_SCHEMA["properties"]["scope"]["additionalProperties"] is False
    assert POLICY_SCHEMA["properties"]["tests"]["items"]["additionalProperties"] is False


def test_a_minimal_and_a_full_spec_are_valid() -> None:
    assert validate_policy_spec(spec()) == {}
    full = spec(
        description="Card numbers never leave in a reply.",
        checkpoint="output",
        scope={"type": "persona", "value": "support"},
        condition="'card' in pii_types",
        effect="redact",
        redact=["card", "iban"],
        severity="medium",
        order=10,
        message="Card numbers are masked.",
        tests=[
            {"name": "card", "facts": {"persona": "support", "pii_types": ["card"]}, "expect": "redact"},
            {"facts": {"persona": "support", "pii_types": []}, "expect": "allow"},
        ],
    )
    assert validate_policy_spec(full) == {}
    assert check_policy_tests(full).passed


def test_missing_required_fields_are_named() -> None:
    errors = validate_policy_spec({"description": "nothing else"})
    assert {key: errors[key] for key in ("checkpoint", "condition", "effect", "severity")} == {
        "checkpoint": ["This field is required."],
        "condition": ["This field is required."],
        "effect": ["This field is required."],
        "severity": ["This field is required."],
    }


@pytest.mark.parametrize(
    ("scope", "errors"),
    [
        ({"type": "all"}, {}),
        ({"type": "agent", "value": "billing-bot"}, {}),
        ({"type": "persona", "value": "support"}, {}),
        ({"type": "tool", "value": "payments.refund"}, {}),
        ({"type": "risk", "value": "critical"}, {}),
        ({"type": "agent"}, {"scope.value": ["required when scope type is 'agent'"]}),
        ({"type": "tool", "value": ""}, {"scope.value": ["'' should be non-empty"]}),
        ({"type": "risk"}, {"scope.value": ["required when scope type is 'risk'"]}),
        ({"type": "risk", "value": "severe"}, {"scope.value": ["'severe' is not one of: low, medium, high, critical"]}),
        ({"type": "all", "value": "x"}, {"scope.value": ["must be absent when scope type is 'all'"]}),
        ({"type": "team", "value": "x"}, {"scope.type": ["'team' is not one of: all, agent, persona, tool, risk"]}),
        ({"value": "x"}, {"scope.type": ["This field is required."]}),
        ({"type": "agent", "value": "a", "extra": 1}, {"scope.extra": ["Unknown field."]}),
    ],
)
def test_scope_value_rules(scope: dict[str, Any], errors: dict[str, list[str]]) -> None:
    assert validate_policy_spec(spec(scope=scope)) == errors


def test_bad_values_are_keyed_by_their_path() -> None:
    errors = validate_policy_spec(
        spec(
            effect="block",
            severity="urgent",
            order=100001,
            color="red",
            tests=[{"facts": {}, "expect": "maybe"}, {"expect": "deny"}, {"facts": [], "expect": "allow"}],
        )
    )
    assert errors == {
        "color": ["Unknown field."],
        "effect": ["'block' is not one of: allow, deny, redact, require_approval, escalate"],
        "order": ["100001 is greater than the maximum of 100000"],
        "severity": ["'urgent' is not one of: info, low, medium, high, critical"],
        "tests[0].expect": ["'maybe' is not one of: allow, deny, redact, require_approval, escalate"],
        "tests[1].facts": ["This field is required."],
        "tests[2].facts": ["[] is not of type 'object'"],
    }


def test_redact_kinds_only_with_effect_redact() -> None:
    assert validate_policy_spec(spec(effect="redact", redact=["email", "injection"])) == {}
    assert validate_policy_spec(spec(effect="redact", redact=["ssn"])) == {
        "redact[0]": ["'ssn' is not one of: email, phone, card, iban, injection"]
    }
    assert validate_policy_spec(spec(effect="deny", redact=["email"])) == {
        "redact": ["only allowed with effect 'redact': remove it or change the effect"]
    }


def test_a_spec_that_is_not_an_object() -> None:
    assert validate_policy_spec([]) == {"": ["[] is not of type 'object'"]}  # type: ignore[arg-type]


def test_a_condition_that_does_not_compile_is_reported_with_its_position() -> None:
    assert validate_policy_spec(spec(condition="tool == ")) == {
        "condition": [
            "Syntax error at line 1, column 8: unexpected end of expression; "
            "expected a value (a fact, a literal or a parenthesised expression)"
        ]
    }
    assert validate_policy_spec(spec(condition="")) == {
        "condition": ["the condition is empty: write a CEL expression that returns true or false"]
    }
    assert validate_policy_spec(spec(condition=7)) == {"condition": ["7 is not of type 'string'"]}


# --- compiling conditions -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "line", "column", "message"),
    [
        ("tool == ", 1, 8, "unexpected end of expression; expected a value"),
        ("args.amount > ", 1, 14, "unexpected end of expression; expected a value"),
        ("tool == 'refund' &&\n  (risk == 'high' ||\n   risk == 'critical'", 3, 22, "expected ')'"),
        ("tool == 'refund'\n  && risk = 'high'", 2, 11, "unexpected character '=' (compare with ==)"),
        ("args.amount >\n\n== 5", 3, 1, "unexpected '=='"),
        ("1 +* 2", 1, 4, "unexpected '*'"),
        ("text.contains('refund) && injection", 1, 15, "a string literal that is never closed"),
        ("tool == 'x' )", 1, 13, "unexpected ')'"),
        ("pii.card > 0 & injection", 1, 14, "use && and ||"),
    ],
)
def test_syntax_errors_carry_line_and_column(expression: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(expression)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert message in caught.value.message
    assert str(caught.value).startswith(f"Syntax error at line {line}, column {column}: ")


@pytest.mark.parametrize("expression", ["", "   ", "\n\t\n"])
def test_an_empty_condition_is_refused(expression: str) -> None:
    with pytest.raises(ConditionError, match="empty") as caught:
        compile_condition(expression)
    assert (caught.value.line, caught.value.column) == (None, None)


def test_too_long_or_too_deep_conditions_are_refused_when_compiled() -> None:
    with pytest.raises(ConditionError, match="longer than"):
        compile_condition("true && " * (MAX_CONDITION_LENGTH // 8) + "true")
    with pytest.raises(ConditionError, match="nests too deeply"):
        compile_condition("true" + " && true" * 300)
    with pytest.raises(ConditionError, match="nests too deeply"):
        compile_condition("(" * 40 + "true" + ")" * 40)
    # A long but ordinary condition is fine.
    assert compile_condition(" || ".join(f"tool == 'tool-{n}'" for n in range(60))).evaluate({"tool": "tool-59"})


def test_compiled_conditions_are_cached_per_expression() -> None:
    expression = "size(text) > 12345"
    first = compile_condition(expression)
    hits = compile_condition.cache_info().hits
    assert compile_condition(expression) is first
    assert compile_condition.cache_info().hits == hits + 1


# --- running conditions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "facts", "expected"),
    [
        ("args.amount > 1000 && risk in ['high', 'critical']", ACTION, True),
        ("args.amount > 1000 && risk in ['high', 'critical']", {**ACTION, "risk": "medium"}, False),
        ("'card' in pii_types", INPUT, True),
        ("'card' in pii_types", ACTION, False),
        ("injection", {**INPUT, "injection": True}, True),
        ("injection", INPUT, False),
        ("size(text) > 500", INPUT, False),
        ("size(text) > 500", {**INPUT, "text": "x" * 501}, True),
        ('text.contains("refund")', INPUT, True),
        ('text.matches("(?i)lawyer|attorney|solicitor")', INPUT, True),
        ('text.matches("(?i)\\\\bsue\\\\b")', INPUT, False),
        ("has(args.amount) && args.amount > 100", ACTION, True),
        ("has(args.amount) && args.amount > 100", {**ACTION, "args": {"order_id": "A-1"}}, False),
        ("pii.card > 0 || pii.iban > 0", INPUT, True),
        ("side_effect == 'write' && autonomy == 'autonomous'", ACTION, False),
        ("budget.tokens_used > budget.tokens_limit * 0.8", ACTION, True),
        ("budget.cost_used >= budget.cost_limit", ACTION, False),
        ("tool.startsWith('payments.') && args.currency != 'EUR'", ACTION, False),
        ("args.exists(k, k == 'iban')", ACTION, False),
        ("pii_types.exists(t, t in ['card', 'iban'])", INPUT, True),
        ("injection_phrases.size() > 0", INPUT, False),
        ("channel == 'run' && agent == ''", INPUT, False),
        ("persona == 'support' ? length > 80 : false", INPUT, True),
    ],
)
def test_realistic_conditions(expression: str, facts: dict[str, Any], expected: bool) -> None:
    assert compile_condition(expression).evaluate(facts) is expected


@pytest.mark.parametrize(
    ("expression", "amount", "expected"),
    [
        ("args.amount > 1000", 1500.0, True),
        ("args.amount > 1000", 1500, True),
        ("args.amount > 1000.0", 1500, True),
        ("args.amount == 1500", 1500.0, True),
        ("args.amount == 1500.0", 1500, True),
        ("args.amount != 1500", 1500.0, False),
        ("args.amount < 99.99", 50, True),
        ("args.amount <= 1000u", 1000.0, True),
        ("args.amount in [500, 1500]", 1500.0, True),
        ("args.amount in [500.5, 1500.0]", 1500, True),
        ("args.amount in [1, 2]", 1.5, False),
        ("double(args.amount) * 1.2 > 1700.0", 1500, True),
        ("int(args.amount) % 100 == 0", 1500.0, True),
        ("args.amount * 2 > 2999.5", 1500, True),
        ("args.amount * 2 == 3000", 1500.0, True),
        ("args.amount + 0.5 == 1500.5", 1500, True),
        ("0.5 + args.amount == 1500.5", 1500, True),
        ("args.amount / 4 == 375.0", 1500.0, True),
        ("args.amount / 4 == 375", 1500, True),
        ("1000 < args.amount * 1.0", 1500.0, True),
        ("type(args.amount + 1.0) == double", 1500.0, True),
        ("args.amount > 1000", 2**70, True),  # beyond int64: a double
    ],
)
def test_numbers_compare_across_int_and_double(expression: str, amount: float, expected: bool) -> None:
    assert compile_condition(expression).evaluate({"args": {"amount": amount}}) is expected


@pytest.mark.parametrize(
    ("expression", "facts", "error"),
    [
        ("args.limit > 10", ACTION, "no such member in mapping: 'limit'"),
        ("pii['ssn'] > 0", INPUT, "no such key: 'ssn'"),
        ("amount > 10", ACTION, "undeclared reference to 'amount'"),
        ('args.amount > "x"', ACTION, "no matching overload for '>' applied to (double, string)"),
        ("args.order_id + 1 == 'A-11'", ACTION, "no matching overload for '+' applied to (string, int)"),
        ("injection == 1", INPUT, "no matching overload for '==' applied to (bool, int)"),
        ("text.lowerAscii().contains('x')", INPUT, "undeclared reference to 'lowerAscii'"),
        ("text.matches('(')", INPUT, "match error: missing ): ("),
        ("budget.steps_used / 0 > 1", ACTION, "divide by zero"),
        ("tool", ACTION, "the condition returned string, not bool"),
        ("args", ACTION, "the condition returned map, not bool"),
        ("pii.card", INPUT, "the condition returned int, not bool"),
        ("null", INPUT, "the condition returned null, not bool"),
        ("true", {"when": object()}, "a fact of type object cannot be used in a condition"),
        ("text.secret == 'x'", INPUT, "a string has no fields"),
        ("text in [1, 2]", INPUT, "no such overload"),
        ("int(text) > 0", INPUT, "conversion failed"),
        ("pii[text] > 0", INPUT, "no such key"),
    ],
)
def test_runtime_errors_raise_condition_runtime_error(expression: str, facts: dict[str, Any], error: str) -> None:
    with pytest.raises(ConditionRuntimeError) as caught:
        compile_condition(expression).evaluate(facts)
    assert error in str(caught.value)
    assert "activation" not in str(caught.value)  # celpy's dump of every variable is cut off
    assert "4111" not in str(caught.value)  # and values, which may be personal data, are not quoted


def test_cel_error_absorption_in_logic() -> None:
    # CEL's && and || are commutative over errors: a decided side wins, whichever side errs.
    assert compile_condition("args.limit > 10 || true").evaluate(ACTION) is True
    assert compile_condition("false && args.limit > 10").evaluate(ACTION) is False
    with pytest.raises(ConditionRuntimeError):
        compile_condition("args.limit > 10 || false").evaluate(ACTION)


# --- scope ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "facts", "expected"),
    [
        (None, {}, True),
        ({"type": "all"}, {}, True),
        ({"type": "agent", "value": "billing-bot"}, ACTION, True),
        ({"type": "agent", "value": "other-bot"}, ACTION, False),
        ({"type": "persona", "value": "support"}, INPUT, True),
        ({"type": "persona", "value": "sales"}, INPUT, False),
        ({"type": "persona", "value": "support"}, ACTION, False),  # no persona fact: out of scope
        ({"type": "tool", "value": "payments.refund"}, ACTION, True),
        ({"type": "tool", "value": "payments.charge"}, ACTION, False),
        ({"type": "tool", "value": "payments.refund"}, INPUT, False),
        ({"type": "risk", "value": "high"}, ACTION, True),
        ({"type": "risk", "value": "critical"}, ACTION, False),
        ({"type": "risk", "value": "high"}, {}, False),
    ],
)
def test_in_scope(scope: dict[str, Any] | None, facts: dict[str, Any], expected: bool) -> None:
    fields = {} if scope is None else {"scope": scope}
    assert in_scope(spec(**fields), facts) is expected


@pytest.mark.parametrize(
    ("scope", "considered"),
    [
        ({"type": "all"}, True),
        ({"type": "agent", "value": "billing-bot"}, True),
        ({"type": "agent", "value": "hr-bot"}, False),
        ({"type": "tool", "value": "payments.refund"}, True),
        ({"type": "tool", "value": "crm.lookup"}, False),
        ({"type": "risk", "value": "high"}, True),
        ({"type": "risk", "value": "low"}, False),
    ],
)
def test_only_policies_in_scope_are_considered(scope: dict[str, Any], considered: bool) -> None:
    decision = evaluate("action", ACTION, [policy("scoped", scope=scope, message="scoped")])
    assert decision.effect == ("deny" if considered else "allow")
    assert [match.policy for match in decision.matched] == (["scoped"] if considered else [])


def test_persona_scope_at_the_input_checkpoint() -> None:
    policies = [policy("support-only", checkpoint="input", scope={"type": "persona", "value": "support"})]
    assert evaluate("input", INPUT, policies).effect == "deny"
    assert evaluate("input", {**INPUT, "persona": "sales"}, policies).effect == "allow"
    assert evaluate("input", {key: v for key, v in INPUT.items() if key != "persona"}, policies).effect == "allow"


def test_only_policies_of_the_checkpoint_are_considered() -> None:
    policies = [policy("on-output", checkpoint="output"), policy("on-input", checkpoint="input")]
    decision = evaluate("input", INPUT, policies)
    assert [match.policy for match in decision.matched] == ["on-input"]
    assert evaluate("action", ACTION, policies).effect == "allow"


def test_unknown_checkpoint() -> None:
    with pytest.raises(ValueError, match="unknown checkpoint 'tool'"):
        evaluate("tool", ACTION, [])


# --- order, precedence and defaults ---------------------------------------------------------------------------


def test_lower_order_runs_first_and_ties_break_by_slug() -> None:
    policies = [
        policy("zeta", order=5, effect="escalate"),
        policy("beta", order=5, effect="require_approval"),
        policy("alpha", order=50, effect="deny"),
    ]
    decision = evaluate("action", ACTION, policies)
    assert decision.effect == "require_approval"
    assert [match.policy for match in decision.matched] == ["beta"]
    # Default order is 1000: an explicit order of 999 runs before it.
    policies = [policy("aaa", effect="deny"), policy("zzz", order=999, effect="escalate")]
    assert evaluate("action", ACTION, policies).effect == "escalate"


def test_the_first_terminal_match_decides_and_stops() -> None:
    policies = [
        policy("no-match", order=1, condition="args.amount > 1000000"),
        policy("big-refund", order=10, effect="require_approval", condition="args.amount > 1000", message="Big."),
        policy("always-deny", order=20, condition="args.missing > 1"),  # never reached: would error
    ]
    decision = evaluate("action", ACTION, policies)
    assert decision.effect == "require_approval"
    assert decision.matched[0].policy == "big-refund"
    assert decision.errors == ()
    assert decision.reasons == ("policy 'big-refund' v1 (order 10) matched: require_approval — Big.",)


def test_an_allow_with_a_lower_order_exempts_from_later_policies() -> None:
    policies = [
        policy("trusted-agent", order=10, effect="allow", condition="agent == 'billing-bot'", severity="info"),
        policy("no-large-refunds", order=20, effect="deny", condition="args.amount > 1000"),
    ]
    assert evaluate("action", ACTION, policies).effect == "allow"
    assert evaluate("action", {**ACTION, "agent": "other"}, policies).effect == "deny"


def test_redactions_accumulate_and_a_later_deny_still_decides() -> None:
    policies = [
        policy("mask-cards", 3, checkpoint="output", order=10, effect="redact", redact=["card"], condition="true"),
        policy("mask-contact", 1, checkpoint="output", order=20, effect="redact", redact=["phone", "email"]),
        policy("mask-all", 2, checkpoint="output", order=30, effect="redact"),  # default: every PII kind
        policy("no-injection", 1, checkpoint="output", order=40, condition="injection", message="Injected."),
    ]
    facts = {**INPUT, "injection": True}
    decision = evaluate("output", facts, policies[:2])
    assert decision.effect == "redact"
    assert decision.redact == ("card", "email", "phone")
    assert [match.policy for match in decision.matched] == ["mask-cards", "mask-contact"]

    decision = evaluate("output", facts, policies)
    assert decision.effect == "deny"
    assert [match.effect for match in decision.matched] == ["redact", "redact", "redact", "deny"]
    assert decision.redact == ("card", "email", "iban", "phone")
    assert decision.reasons[-1] == "policy 'no-injection' v1 (order 40) matched: deny — Injected."


def test_no_match_means_allow_by_default() -> None:
    decision = evaluate("action", ACTION, [policy("never", condition="false")])
    assert decision == Decision(
        effect="allow",
        matched=(),
        reasons=("no allow, deny, require_approval or escalate policy matched (1 considered): allow by default",),
        redact=(),
        errors=(),
    )
    assert evaluate("action", ACTION, []).effect == "allow"


def test_default_deny_is_a_last_deny_policy_with_condition_true() -> None:
    policies = [
        policy("read-tools", order=10, effect="allow", condition="side_effect == 'read'"),
        policy("small-refunds", order=20, effect="allow", condition="tool == 'payments.refund' && args.amount <= 100"),
        policy("default-deny", order=100000, effect="deny", condition="true", message="Not explicitly allowed."),
    ]
    assert evaluate("action", {**ACTION, "side_effect": "read"}, policies).effect == "allow"
    assert evaluate("action", {**ACTION, "args": {"amount": 80}}, policies).effect == "allow"
    decision = evaluate("action", ACTION, policies)
    assert decision.effect == "deny"
    assert decision.matched[-1].policy == "default-deny"


def test_the_example_sequence_of_the_reference_page() -> None:
    policies = [
        policy("mask-card-args", order=10, effect="redact", redact=["card"], condition="'card' in pii_types"),
        policy("trusted-reconciler", order=20, effect="allow", scope={"type": "agent", "value": "reconciler"}),
        policy(
            "large-refunds",
            3,
            order=100,
            effect="require_approval",
            scope={"type": "tool", "value": "payments.refund"},
            condition="args.amount > 1000",
            message="Refunds over 1000 are approved by a person.",
        ),
        policy("no-writes-when-observing", order=100, condition="side_effect == 'write' && autonomy == 'observe'"),
        policy("default-deny", order=100000),
    ]
    with_card = {**ACTION, "pii_types": ["card"], "pii": {**ACTION["pii"], "card": 1}}
    decision = evaluate("action", with_card, policies)
    assert (decision.effect, decision.redact) == ("require_approval", ("card",))
    assert [match.policy for match in decision.matched] == ["mask-card-args", "large-refunds"]
    assert decision.reasons[-1] == (
        "policy 'large-refunds' v3 (order 100) matched: require_approval — Refunds over 1000 are approved by a person."
    )
    decision = evaluate("action", {**with_card, "agent": "reconciler"}, policies)
    assert (decision.effect, decision.redact) == ("allow", ("card",))
    observing = {**ACTION, "autonomy": "observe", "args": {"amount": 50}}
    decision = evaluate("action", observing, policies)
    assert decision.effect == "deny"
    assert [match.policy for match in decision.matched] == ["no-writes-when-observing"]


def test_matches_carry_severity_and_message_and_the_decision_serialises() -> None:
    decision = evaluate(
        "action", ACTION, [policy("no-cards", 3, order=10, severity="critical", message="No card numbers.")]
    )
    assert decision.matched[0].as_dict() == {
        "policy": "no-cards",
        "version": 3,
        "effect": "deny",
        "severity": "critical",
        "message": "No card numbers.",
    }
    assert decision.reasons == ("policy 'no-cards' v3 (order 10) matched: deny — No card numbers.",)
    assert json.loads(json.dumps(decision.as_dict())) == {
        "effect": "deny",
        "matched": [decision.matched[0].as_dict()],
        "reasons": list(decision.reasons),
        "redact": [],
        "errors": [],
    }


# --- fail safe ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "error"),
    [
        ("args.limit > 10", "no such member in mapping: 'limit'"),
        ('args.amount > "1000"', "no matching overload for '>' applied to (double, string)"),
        ("args.amount", "the condition returned double, not bool"),
    ],
)
def test_a_runtime_error_denies_and_stops(condition: str, error: str) -> None:
    policies = [
        policy("mask", order=1, effect="redact", redact=["email"]),
        policy("broken", 2, order=5, effect="allow", condition=condition),
        policy("allow-rest", order=10, effect="allow"),
    ]
    decision = evaluate("action", ACTION, policies)
    assert decision.effect == "deny"
    assert decision.errors == (f"policy 'broken' v2: {error}",)
    assert [match.policy for match in decision.matched] == ["mask"]
    assert decision.reasons[-1] == f"policy 'broken' v2 (order 5) failed: {error} — deny (fail-safe)"


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"condition": "tool == "}, "Syntax error at line 1, column 8"),
        ({"condition": ""}, "the condition is empty"),
        ({"condition": None}, "the condition is not a string"),
        ({"effect": "block"}, "invalid effect 'block'"),
        ({"scope": {"type": "agent"}}, "scope 'agent' has no value"),
        ({"scope": "everyone"}, "invalid scope 'everyone'"),
    ],
)
def test_a_corrupted_stored_spec_denies(fields: dict[str, Any], error: str) -> None:
    decision = evaluate("action", ACTION, [policy("corrupt", 4, **{"effect": "allow", **fields})])
    assert decision.effect == "deny"
    assert len(decision.errors) == 1
    assert decision.errors[0].startswith("policy 'corrupt' v4: ")
    assert error in decision.errors[0]


def test_facts_that_cannot_become_cel_values_deny() -> None:
    decision = evaluate("action", {**ACTION, "args": {"when": object()}}, [policy("any", effect="allow")])
    assert decision.effect == "deny"
    assert "cannot be used in a condition" in decision.errors[0]


def test_policies_out_of_scope_never_fail() -> None:
    # A broken policy for another agent does not affect this one.
    policies = [policy("other", scope={"type": "agent", "value": "hr-bot"}, condition="nope > 1")]
    assert evaluate("action", ACTION, policies).effect == "allow"


# --- the approval check ---------------------------------------------------------------------------------------


def test_check_policy_tests_passes_when_every_example_is_right() -> None:
    result = check_policy_tests(
        spec(
            effect="require_approval",
            condition="args.amount > 1000 && risk in ['high', 'critical']",
            tests=[
                {"name": "large refund", "facts": ACTION, "expect": "require_approval"},
                {"name": "small refund", "facts": {**ACTION, "args": {"amount": 20}}, "expect": "allow"},
            ],
        )
    )
    assert result.name == "policy.tests"
    assert result.passed
    assert result.findings == ()


def test_check_policy_tests_reports_each_wrong_or_failing_example() -> None:
    result = check_policy_tests(
        spec(
            scope={"type": "tool", "value": "payments.refund"},
            condition="args.amount > 1000",
            tests=[
                {"name": "large", "facts": ACTION, "expect": "deny"},
                {"name": "small", "facts": {**ACTION, "args": {"amount": 5}}, "expect": "deny"},
                {"facts": {**ACTION, "args": {}}, "expect": "allow"},
                {"name": "other tool", "facts": {**ACTION, "tool": "crm.lookup"}, "expect": "deny"},
            ],
        )
    )
    assert not result.passed
    assert result.findings == (
        Finding("test 'small': expected deny, got allow", "error", "tests[1]"),
        Finding("test #3: the condition failed: no such member in mapping: 'amount'", "error", "tests[2]"),
        Finding(
            "test 'other tool': expected deny, got allow (the facts are outside the policy's scope)",
            "error",
            "tests[3]",
        ),
    )


def test_check_policy_tests_warns_without_tests() -> None:
    result = check_policy_tests(spec())
    assert result.passed
    assert result.findings == (
        Finding("no tests: add examples of facts this policy should and should not match", "warning"),
    )
    assert check_policy_tests(spec(tests=[])).findings == result.findings


# --- facts ----------------------------------------------------------------------------------------------------


def test_facts_document_every_checkpoint() -> None:
    message = {"text", "channel", "persona", "agent", "pii", "pii_types", "pii_found", "injection"}
    message |= {"injection_phrases", "length"}
    assert set(FACTS["input"]) == message
    assert set(FACTS["output"]) == message
    assert set(FACTS["action"]) == {
        "tool",
        "risk",
        "side_effect",
        "args",
        "agent",
        "autonomy",
        "budget",
        "pii",
        "pii_types",
        "pii_found",
        "injection",
        "injection_phrases",
    }
    assert all(description for facts in FACTS.values() for description in facts.values())
    assert set(ACTION) == set(FACTS["action"])
    assert set(INPUT) == set(FACTS["input"])


def test_the_reference_page_documents_every_fact_and_its_examples_work() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "policies.md").read_text()
    for checkpoint, facts in FACTS.items():
        for name in facts:
            assert f"| `{name}` |" in page, f"{checkpoint} fact {name} is not in docs/policies.md"
    examples = re.findall(r"^\| (input|output|action) \| `(.+?)` \|", page, flags=re.MULTILINE)
    assert len(examples) >= 8
    for checkpoint, condition in examples:
        example = {**ACTION, "args": {**ACTION["args"], "iban": "DE1"}} if checkpoint == "action" else INPUT
        assert compile_condition(condition.replace("\\|", "|")).evaluate(example) in {True, False}
