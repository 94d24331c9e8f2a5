"""Evaluation of policies at a checkpoint: ``PolicyRef``, ``Match`` and ``Decision``, scope matching, the
``evaluate`` function (order, first terminal match, redact accumulation, default allow, fail-safe deny, as the
``governance.policies`` package docstring sets out) and ``check_policy_tests``, the approval check that runs a
spec's own examples."""

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from governance.checks import CheckResult, Finding
from governance.detectors.findings import PII_KINDS
from governance.policies.conditions import compile_condition, facts_to_cel
from governance.policies.constants import CHECKPOINTS, DEFAULT_ORDER, EFFECTS, SCOPE_TYPES, TERMINAL_EFFECTS
from governance.policies.errors import ConditionError, ConditionRuntimeError


@dataclass(frozen=True)
class PolicyRef:
    """One version of a policy, as evaluation needs it."""

    slug: str
    version: int
    spec: dict[str, Any]


@dataclass(frozen=True)
class Match:
    policy: str
    version: int
    effect: str
    severity: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    effect: str  # allow | deny | redact | require_approval | escalate
    matched: tuple[Match, ...]  # in evaluation order
    reasons: tuple[str, ...]  # human-readable, one per match, error or default
    redact: tuple[str, ...]  # kinds to redact (union over matched redact policies), sorted
    errors: tuple[str, ...]  # runtime errors: "policy 'x' v2: <error>"; any error means effect deny

    def as_dict(self) -> dict[str, Any]:
        return {
            "effect": self.effect,
            "matched": [match.as_dict() for match in self.matched],
            "reasons": list(self.reasons),
            "redact": list(self.redact),
            "errors": list(self.errors),
        }


def _scope(spec: Mapping[str, Any]) -> tuple[str, Any]:
    scope = spec.get("scope")
    if scope is None:
        return "all", None
    if not isinstance(scope, Mapping) or scope.get("type", "all") not in SCOPE_TYPES:
        raise ValueError(f"invalid scope {scope!r}")
    kind = scope.get("type", "all")
    if kind != "all" and "value" not in scope:
        raise ValueError(f"scope {kind!r} has no value")
    return kind, scope.get("value")


def in_scope(spec: Mapping[str, Any], facts: Mapping[str, Any]) -> bool:
    """Whether the spec's scope matches the facts: ``all`` always, else ``facts[type] == value`` (missing: no).

    Raises ``ValueError`` for a malformed scope (which ``evaluate`` treats as an error, so: deny).
    """
    kind, value = _scope(spec)
    if kind == "all":
        return True
    return kind in facts and facts[kind] == value


def _order(spec: Mapping[str, Any]) -> int:
    order = spec.get("order", DEFAULT_ORDER)
    return order if isinstance(order, int) and not isinstance(order, bool) else DEFAULT_ORDER


def _label(policy: PolicyRef, order: int) -> str:
    return f"policy {policy.slug!r} v{policy.version} (order {order})"


def evaluate(checkpoint: str, facts: Mapping[str, Any], policies: Sequence[PolicyRef]) -> Decision:
    """The decision of ``policies`` at ``checkpoint`` on ``facts``; see the module docstring for the rules."""
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"unknown checkpoint {checkpoint!r}: expected one of {', '.join(CHECKPOINTS)}")
    candidates = sorted(
        (policy for policy in policies if policy.spec.get("checkpoint") == checkpoint),
        key=lambda policy: (_order(policy.spec), policy.slug),
    )
    matched: list[Match] = []
    reasons: list[str] = []
    redact: set[str] = set()
    variables: dict[str, Any] | None = None
    considered = 0

    def decision(effect: str, errors: tuple[str, ...] = ()) -> Decision:
        return Decision(effect, tuple(matched), tuple(reasons), tuple(sorted(redact)), errors)

    for policy in candidates:
        spec = policy.spec
        label = _label(policy, _order(spec))
        try:
            if not in_scope(spec, facts):
                continue
            considered += 1
            effect = spec.get("effect")
            if effect not in EFFECTS:
                raise ConditionRuntimeError(f"invalid effect {effect!r}")
            expression = spec.get("condition")
            if not isinstance(expression, str):
                raise ConditionRuntimeError(f"the condition is not a string: {expression!r}")
            condition = compile_condition(expression)
            if variables is None:
                variables = facts_to_cel(facts)
            if not condition.evaluate_cel(variables):
                continue
        except (ValueError, ConditionError, ConditionRuntimeError) as error:
            reasons.append(f"{label} failed: {error} — deny (fail-safe)")
            return decision("deny", (f"policy {policy.slug!r} v{policy.version}: {error}",))
        message = str(spec.get("message") or "")
        matched.append(Match(policy.slug, policy.version, effect, str(spec.get("severity", "")), message))
        reasons.append(f"{label} matched: {effect}" + (f" — {message}" if message else ""))
        if effect in TERMINAL_EFFECTS:
            return decision(effect)
        redact.update(str(kind) for kind in (spec.get("redact") or PII_KINDS))
    effect = "redact" if redact else "allow"
    reasons.append(
        f"no allow, deny, require_approval or escalate policy matched ({considered} considered): "
        + ("redact" if redact else "allow by default")
    )
    return decision(effect)


def check_policy_tests(spec: dict[str, Any]) -> CheckResult:
    """Run the spec's ``tests`` with this policy alone (as ``draft`` v0) at its checkpoint; each miss is an error."""
    name = "policy.tests"
    tests = spec.get("tests") or []
    if not tests:
        return CheckResult(
            name,
            (Finding("no tests: add examples of facts this policy should and should not match", "warning"),),
        )
    checkpoint = spec.get("checkpoint")
    if checkpoint not in CHECKPOINTS:
        return CheckResult(name, (Finding(f"unknown checkpoint {checkpoint!r}: tests cannot run", path="checkpoint"),))
    draft = PolicyRef(slug="draft", version=0, spec=spec)
    findings: list[Finding] = []
    for index, test in enumerate(tests):
        path = f"tests[{index}]"
        if not isinstance(test, Mapping) or not isinstance(test.get("facts", {}), Mapping):
            findings.append(Finding("a test needs facts (an object) and expect", path=path))
            continue
        title = repr(test["name"]) if test.get("name") else f"#{index + 1}"
        facts = test.get("facts", {})
        expect = test.get("expect")
        decision = evaluate(checkpoint, facts, [draft])
        if decision.errors:
            error = decision.errors[0].removeprefix("policy 'draft' v0: ")
            findings.append(Finding(f"test {title}: the condition failed: {error}", path=path))
        elif decision.effect != expect:
            note = ""
            try:
                if not in_scope(spec, facts):
                    note = " (the facts are outside the policy's scope)"
            except ValueError:
                pass
            findings.append(Finding(f"test {title}: expected {expect}, got {decision.effect}{note}", path=path))
    return CheckResult(name, tuple(findings))
