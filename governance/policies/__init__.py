"""Guardrail policies: the spec's schema, CEL conditions, and the one function that evaluates them.

A guardrail policy is an organisation-wide rule evaluated at a *checkpoint*: ``input`` (what a user or caller
sends), ``output`` (what a persona or agent is about to send back) or ``action`` (a tool call an agent is about
to make). Its ``condition`` is a CEL (Common Expression Language) expression over the facts at hand, compiled
and run by ``cel-python`` (``celpy``) with its tree-walking interpreter: never Python ``eval``/``exec`` (celpy's
optional transpiling runner uses ``exec``, so it is deliberately not used here).

``evaluate(checkpoint, facts, policies)`` decides:

- Only policies whose ``checkpoint`` equals the given one and whose ``scope`` matches the facts are considered
  (``all`` always; ``agent``/``persona``/``tool``/``risk`` when ``facts[type] == value``; a missing fact means
  out of scope).
- They run in ascending ``order`` (default 1000), ties broken by slug.
- ``redact`` matches accumulate (their kinds are unioned) and evaluation continues.
- The first match with a terminal effect (``allow``, ``deny``, ``require_approval``, ``escalate``) decides and
  stops evaluation, so an ``allow`` with a lower order exempts from every later policy.
- No terminal match: ``redact`` if any redact policy matched, else ``allow`` (default allow; for default deny add
  a last ``deny`` policy with condition ``true`` and a high order).
- Fail safe: a condition that errors at run time (missing field, type mismatch, non-bool result) or a stored spec
  that is broken (its condition no longer compiles, an unknown effect) makes the decision ``deny`` at once, with
  the error in ``errors`` and a reason naming the policy.
- An unknown checkpoint raises ``ValueError``: that is a bug in the caller, not a decision.

Facts are converted from plain Python (dicts, lists, str, int, float, bool, None) to CEL values as they are:
``int`` → ``int``, ``float`` → ``double``, so a JSON ``1500`` and ``1500.0`` both work. Comparisons
(``== != < <= > >=`` and ``in`` a list) work across ``int``/``uint``/``double`` as the CEL specification says
(``1500.0 > 1000``, ``3 == 3.0``), which celpy 0.5.0 only half does on its own, and arithmetic mixing a double
with an int is done in double (``budget.tokens_limit * 0.8``), where standard CEL would refuse it. An integer
outside the int64 range becomes a ``double``. See ``docs/policies.md`` for authors.
"""

from governance.policies.conditions import CompiledCondition, compile_condition, facts_to_cel, from_cel, to_cel
from governance.policies.constants import (
    CHECKPOINTS,
    DEFAULT_ORDER,
    EFFECTS,
    MAX_CONDITION_DEPTH,
    MAX_CONDITION_LENGTH,
    MAX_ORDER,
    REDACT_KINDS,
    RISKS,
    SCOPE_TYPES,
    SEVERITIES,
    TERMINAL_EFFECTS,
)
from governance.policies.errors import ConditionError, ConditionRuntimeError
from governance.policies.evaluation import Decision, Match, PolicyRef, check_policy_tests, evaluate, in_scope
from governance.policies.facts import FACTS
from governance.policies.schema import POLICY_SCHEMA, validate_policy_spec

__all__ = [
    "CHECKPOINTS",
    "DEFAULT_ORDER",
    "EFFECTS",
    "FACTS",
    "MAX_CONDITION_DEPTH",
    "MAX_CONDITION_LENGTH",
    "MAX_ORDER",
    "POLICY_SCHEMA",
    "REDACT_KINDS",
    "RISKS",
    "SCOPE_TYPES",
    "SEVERITIES",
    "TERMINAL_EFFECTS",
    "CompiledCondition",
    "ConditionError",
    "ConditionRuntimeError",
    "Decision",
    "Match",
    "PolicyRef",
    "check_policy_tests",
    "compile_condition",
    "evaluate",
    "facts_to_cel",
    "from_cel",
    "in_scope",
    "to_cel",
    "validate_policy_spec",
]
