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

import functools
import operator
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import celpy
import lark
import re2
from celpy import celtypes
from celpy.evaluation import CELEvalError, CELUnsupportedError, operator_in
from jsonschema import Draft202012Validator, ValidationError

from governance.checks import CheckResult, Finding
from governance.detectors.findings import KINDS, PII_KINDS

CHECKPOINTS = ("input", "output", "action")
EFFECTS = ("allow", "deny", "redact", "require_approval", "escalate")
TERMINAL_EFFECTS = frozenset({"allow", "deny", "require_approval", "escalate"})
SEVERITIES = ("info", "low", "medium", "high", "critical")
SCOPE_TYPES = ("all", "agent", "persona", "tool", "risk")
RISKS = ("low", "medium", "high", "critical")
REDACT_KINDS = KINDS
DEFAULT_ORDER = 1000
MAX_ORDER = 100_000
MAX_CONDITION_LENGTH = 4000
# celpy's interpreter recurses about five frames per syntax-tree level under a recursion limit of 2500; a deeper
# tree would compile and then fail every evaluation, so it is refused when compiled. Real conditions are < 60.
MAX_CONDITION_DEPTH = 250

# --------------------------------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------------------------------

POLICY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Guardrail policy",
    "description": "An organisation-wide rule evaluated at a checkpoint: a CEL condition and an effect.",
    "type": "object",
    "additionalProperties": False,
    "required": ["checkpoint", "condition", "effect", "severity"],
    "properties": {
        "description": {
            "type": "string",
            "maxLength": 2000,
            "description": "What the policy is for (free text).",
        },
        "checkpoint": {
            "enum": list(CHECKPOINTS),
            "description": "Where the policy is evaluated: input (what comes in), output (what goes out), "
            "action (a tool call about to be made).",
        },
        "scope": {
            "type": "object",
            "description": "Which traffic the policy applies to; all when absent.",
            "default": {"type": "all"},
            "additionalProperties": False,
            "required": ["type"],
            "properties": {
                "type": {
                    "enum": list(SCOPE_TYPES),
                    "description": "all, or the fact that must equal value: agent, persona, tool or risk.",
                },
                "value": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The agent or persona slug, tool name or risk level (low, medium, high, "
                    "critical) the fact must equal; absent for all.",
                },
            },
            "allOf": [
                {
                    "if": {"properties": {"type": {"const": "all"}}, "required": ["type"]},
                    "then": {"not": {"required": ["value"]}},
                },
                {
                    "if": {"properties": {"type": {"enum": ["agent", "persona", "tool"]}}, "required": ["type"]},
                    "then": {"required": ["value"]},
                },
                {
                    "if": {"properties": {"type": {"const": "risk"}}, "required": ["type"]},
                    "then": {"required": ["value"], "properties": {"value": {"enum": list(RISKS)}}},
                },
            ],
        },
        "condition": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_CONDITION_LENGTH,
            "description": "CEL expression over the checkpoint's facts, returning a bool; the policy matches "
            "when it is true.",
        },
        "effect": {
            "enum": list(EFFECTS),
            "description": "What a match does: allow, deny, require_approval and escalate decide and stop "
            "evaluation; redact accumulates and evaluation continues.",
        },
        "redact": {
            "type": "array",
            "items": {"enum": list(REDACT_KINDS)},
            "minItems": 1,
            "uniqueItems": True,
            "default": list(PII_KINDS),
            "description": "Kinds to redact when the policy matches; only with effect redact. Default: every "
            "PII kind (email, phone, card, iban).",
        },
        "severity": {
            "enum": list(SEVERITIES),
            "description": "How serious a match is, for reviewers, alerts and metrics.",
        },
        "order": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_ORDER,
            "default": DEFAULT_ORDER,
            "description": "Evaluation order: lower runs first; ties are broken by the policy's slug.",
        },
        "message": {
            "type": "string",
            "maxLength": 2000,
            "description": "Why, shown to the user or reviewer when the policy matches.",
        },
        "tests": {
            "type": "array",
            "description": "Examples the policy must get right before it can be approved.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["facts", "expect"],
                "properties": {
                    "name": {"type": "string", "maxLength": 200, "description": "What the example shows."},
                    "facts": {"type": "object", "description": "The facts at the checkpoint, as in FACTS."},
                    "expect": {
                        "enum": list(EFFECTS),
                        "description": "The decision expected when this policy alone is evaluated on the facts.",
                    },
                },
            },
        },
    },
    "dependentSchemas": {"redact": {"properties": {"effect": {"const": "redact"}}}},
}

Draft202012Validator.check_schema(POLICY_SCHEMA)
_VALIDATOR = Draft202012Validator(POLICY_SCHEMA)


def _path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _schema_errors(error: ValidationError) -> list[tuple[str, str]]:
    """(path, message) pairs for one JSON-Schema error, worded for a policy author."""
    where = list(error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        missing = [name for name in cast(list[str], error.validator_value) if name not in instance]
        if where == ["scope"] and missing == ["value"]:
            return [("scope.value", f"required when scope type is {instance.get('type')!r}")]
        return [(_path([*where, name]), "This field is required.") for name in missing]
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {})
        return [(_path([*where, name]), "Unknown field.") for name in instance if name not in known]
    if error.validator == "not" and where == ["scope"]:
        return [("scope.value", "must be absent when scope type is 'all'")]
    if "dependentSchemas" in error.schema_path:
        return [("redact", "only allowed with effect 'redact': remove it or change the effect")]
    if error.validator == "enum":
        choices = ", ".join(str(choice) for choice in cast(list[Any], error.validator_value))
        return [(_path(where), f"{instance!r} is not one of: {choices}")]
    return [(_path(where), error.message)]


def validate_policy_spec(spec: dict[str, Any]) -> dict[str, list[str]]:
    """Field errors of a policy spec, keyed by path (``"scope.value"``, ``"tests[0].expect"``); empty when valid.

    Schema errors come first; a condition that does not compile is reported under ``"condition"`` with its
    position (``"Syntax error at line 1, column 8: ..."``). Errors about the spec as a whole are under ``""``.
    """
    errors: dict[str, list[str]] = {}
    for error in sorted(_VALIDATOR.iter_errors(spec), key=lambda e: [str(part) for part in e.absolute_path]):
        for path, message in _schema_errors(error):
            messages = errors.setdefault(path, [])
            if message not in messages:
                messages.append(message)
    condition = spec.get("condition") if isinstance(spec, dict) else None
    if isinstance(condition, str):
        try:
            compile_condition(condition)
        except ConditionError as error:
            errors["condition"] = [str(error)]  # says more than the schema's length messages
    return errors


# --------------------------------------------------------------------------------------------------------------
# CEL conditions
# --------------------------------------------------------------------------------------------------------------


class ConditionError(Exception):
    """A condition that does not compile: ``message``, and the 1-based ``line``/``column`` when known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.message = message
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        return f"Syntax error at line {self.line}, column {self.column}: {self.message}"


class ConditionRuntimeError(Exception):
    """A condition that failed while running: missing key or field, type mismatch, no such overload, non-bool."""


_PUNCTUATION = {
    "RPAR": "')'",
    "RSQB": "']'",
    "RBRACE": "'}'",
    "COLON": "':'",
    "COMMA": "','",
    "LPAR": "'('",
}
_OPERAND_TERMINALS = {"IDENT", "INT_LIT", "FLOAT_LIT", "STRING_LIT", "BOOL_LIT", "LPAR", "LSQB"}


def _expected(terminals: Iterable[str]) -> str:
    names = set(terminals)
    if names & _OPERAND_TERMINALS:
        return "; expected a value (a fact, a literal or a parenthesised expression)"
    wanted = sorted(_PUNCTUATION[name] for name in names if name in _PUNCTUATION)
    if wanted:
        return f"; expected {' or '.join(wanted)}"
    return ""


def _syntax_error(error: celpy.CELParseError) -> ConditionError:
    """A ConditionError with the position and a plain wording of lark's parse error."""
    cause = error.__context__
    line, column = error.line, error.column
    if isinstance(cause, lark.exceptions.UnexpectedToken):
        token = cause.token
        if token.type == "$END":
            # lark puts the end of input on the last token; the author needs the place just after it.
            if token.end_line is not None and token.end_column is not None:
                line, column = token.end_line, token.end_column
            return ConditionError(f"unexpected end of expression{_expected(cause.expected)}", line, column)
        return ConditionError(f"unexpected {str(token)!r}{_expected(cause.expected)}", line, column)
    if isinstance(cause, lark.exceptions.UnexpectedCharacters):
        char = cause.char
        hint = ""
        if char in {"'", '"'}:
            hint = " (a string literal that is never closed?)"
        elif char == "=":
            hint = " (compare with ==)"
        elif char in {"&", "|"}:
            hint = " (use && and ||)"
        return ConditionError(f"unexpected character {char!r}{hint}", line, column)
    message = str(error.args[0]).strip().splitlines()[0] if error.args else "invalid expression"
    return ConditionError(message or "invalid expression", line or 1, column or 1)


_CEL_TYPE_NAMES = {
    "IntType": "int",
    "UintType": "uint",
    "DoubleType": "double",
    "StringType": "string",
    "BoolType": "bool",
    "BytesType": "bytes",
    "ListType": "list",
    "MapType": "map",
    "NoneType": "null",
    "TimestampType": "timestamp",
    "DurationType": "duration",
}
_OPERATOR_NAMES = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
}


# celpy's messages can quote values (``StringType('…')``): errors are stored and shown, and facts hold personal
# data, so values are replaced by their CEL type.
_VALUE_REPR = re.compile(r"\b([A-Z]\w*Type)\((?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^()]*)\)")
_CLASS_REPR = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")


def _cel_type(match: re.Match[str]) -> str:
    return _CEL_TYPE_NAMES.get(match[1], match[1])


_TYPE_NAME = re.compile(r"\b([A-Z][a-z]*Type)\b")
_REPEATED_WORD = re.compile(r"\b(\w+) \1\b")


def _scrub(text: str) -> str:
    text = _CLASS_REPR.sub(_cel_type, _VALUE_REPR.sub(_cel_type, text))  # "IntType(1) <class '…IntType'>"
    return _REPEATED_WORD.sub(r"\1", _TYPE_NAME.sub(_cel_type, text))  # "int int" -> "int"


def _describe(error: Exception, expression: str) -> str:
    """celpy's error in CEL's names for operators and types, without values or its dump of every variable."""
    args = error.args
    message = str(args[0]) if args else type(error).__name__
    message = message.split(" (in activation ", 1)[0]
    detail: Any = args[2][0] if len(args) > 2 and isinstance(args[2], tuple) and args[2] else None
    if isinstance(detail, bytes):
        detail = detail.decode(errors="replace")
    overload = re.fullmatch(r"found no matching overload for Token\('RULE', '(\w+)'\) applied to '\((.*)\)'", message)
    if overload:
        operator_name = _OPERATOR_NAMES.get(overload[1], overload[1])
        return f"no matching overload for {operator_name!r} applied to ({_scrub(overload[2])})"
    selection = re.fullmatch(r".* with type: '(.+)' does not support field selection", message, flags=re.DOTALL)
    if selection:
        return f"a {_scrub(selection[1])} has no fields"
    if message == "return error for overflow":
        return "integer overflow" if detail in {None, "overflow"} else "conversion failed"
    if message == "no such key":
        # Name the key when the condition spells it out; a key computed from the facts could be anything.
        return f"no such key: {str(detail)!r}" if detail is not None and str(detail) in expression else message
    if message in {"no such overload", "match error"} and detail is not None:
        detail = str(detail)
        return _scrub(detail if detail.startswith(message) else f"{message}: {detail}")
    return _scrub(message)


# Numbers compare across int, uint and double as the CEL specification says; celpy 0.5.0 does that for
# ``double > int`` but raises "no such overload" for ``int > double`` and for ``==`` across types. Arithmetic
# mixing a double with an int or uint is done in double: standard CEL refuses it, celpy 0.5.0 accepts
# ``double * int`` but refuses ``int * double``; a policy should not deny because a count is an int.
_NUMBERS = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)


def _is_number(value: object) -> bool:
    return isinstance(value, _NUMBERS)


def _plain(value: Any) -> int | float:
    return float(value) if isinstance(value, celtypes.DoubleType) else int(value)


def _comparison(compare: Callable[[Any, Any], bool], library: Callable[..., Any]) -> Callable[..., Any]:
    def function(left: Any, right: Any) -> Any:
        if _is_number(left) and _is_number(right):
            return celtypes.BoolType(compare(_plain(left), _plain(right)))
        if (isinstance(left, celtypes.BoolType) and _is_number(right)) or (
            _is_number(left) and isinstance(right, celtypes.BoolType)
        ):
            # Python would say True == 1; CEL has no such overload.
            raise TypeError(f"no such overload: {type(left).__name__} and {type(right).__name__}")
        return library(left, right)

    return function


def _arithmetic(library: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def function(left: Any, right: Any) -> Any:
        if (
            _is_number(left)
            and _is_number(right)
            and isinstance(left, celtypes.DoubleType) != isinstance(right, celtypes.DoubleType)
        ):
            left, right = celtypes.DoubleType(left), celtypes.DoubleType(right)
        result = library(left, right)
        # celpy 0.5.0 returns a plain Python float from double + - *, which then fails to compare with an int.
        if isinstance(result, float) and not isinstance(result, celtypes.DoubleType):
            return celtypes.DoubleType(result)
        return result

    return function


def _in(item: Any, container: Any) -> Any:
    if _is_number(item) and isinstance(container, celtypes.ListType):
        if any(_is_number(element) and _plain(element) == _plain(item) for element in container):
            return celtypes.BoolType(True)
        container = celtypes.ListType([element for element in container if not _is_number(element)])
    return operator_in(item, container)


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def _matches(text: Any, pattern: Any) -> Any:
    """``text.matches(pattern)``: RE2 (linear time), unanchored, without RE2 logging bad patterns to stderr."""
    try:
        return celtypes.BoolType(re2.search(pattern, text, options=_RE2_OPTIONS) is not None)
    except re2.error as error:
        return CELEvalError("match error", error.__class__, error.args)


_FUNCTIONS: dict[str, Any] = {
    "_<_": _comparison(operator.lt, celpy.evaluation.bool_lt),
    "_<=_": _comparison(operator.le, celpy.evaluation.bool_le),
    "_>_": _comparison(operator.gt, celpy.evaluation.bool_gt),
    "_>=_": _comparison(operator.ge, celpy.evaluation.bool_ge),
    "_==_": _comparison(operator.eq, celpy.evaluation.bool_eq),
    "_!=_": _comparison(operator.ne, celpy.evaluation.bool_ne),
    "_in_": _in,
    "_+_": _arithmetic(operator.add),
    "_-_": _arithmetic(operator.sub),
    "_*_": _arithmetic(operator.mul),
    "_/_": _arithmetic(operator.truediv),
    "_%_": _arithmetic(operator.mod),
    "matches": _matches,
}

_environment: celpy.Environment | None = None
_environment_lock = threading.Lock()


def _celpy_environment() -> celpy.Environment:
    # Created on first use: celpy.Environment() raises the interpreter's recursion limit to 2500 as a side effect.
    global _environment
    if _environment is None:
        _environment = celpy.Environment(runner_class=celpy.InterpretedRunner)
    return _environment


_INT64 = range(-(2**63), 2**63)


def to_cel(value: Any) -> Any:
    """A plain Python value (dict, list, tuple, str, int, float, bool, None) as a CEL value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value) if value in _INT64 else celtypes.DoubleType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, Mapping):
        return celtypes.MapType({_cel_key(key): to_cel(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return celtypes.ListType([to_cel(item) for item in value])
    raise ConditionRuntimeError(f"a fact of type {type(value).__name__} cannot be used in a condition")


def from_cel(value: Any) -> Any:
    """A CEL value as plain JSON-able Python (the inverse of ``to_cel``); timestamps and durations as text."""
    if value is None or isinstance(value, celtypes.NullType):
        return None
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, Mapping):
        return {str(from_cel(key)): from_cel(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [from_cel(item) for item in value]
    return str(value)


def _cel_key(key: Any) -> Any:
    if isinstance(key, str | bool) or (isinstance(key, int) and key in _INT64):
        return to_cel(key)
    raise ConditionRuntimeError(f"a map key of type {type(key).__name__} cannot be used in a condition")


def facts_to_cel(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The facts as CEL variables; convert once and pass to ``CompiledCondition.evaluate_cel`` many times."""
    return {str(name): to_cel(value) for name, value in facts.items()}


class CompiledCondition:
    """A compiled CEL condition, ready to be evaluated on any number of fact sets."""

    __slots__ = ("_runner", "expression")

    def __init__(self, expression: str, runner: celpy.Runner) -> None:
        self.expression = expression
        self._runner = runner

    def __repr__(self) -> str:
        return f"CompiledCondition({self.expression!r})"

    def evaluate(self, facts: Mapping[str, Any]) -> bool:
        """Run on plain Python facts; ``ConditionRuntimeError`` on any failure or a result that is not a bool."""
        return self.evaluate_cel(facts_to_cel(facts))

    def value(self, facts: Mapping[str, Any]) -> Any:
        """The expression's value as plain Python, whatever its type (for expressions that compute, not decide)."""
        return from_cel(self._run(facts_to_cel(facts)))

    def evaluate_cel(self, variables: dict[str, Any]) -> bool:
        """Run on facts already converted by ``facts_to_cel``."""
        result = self._run(variables)
        if not isinstance(result, celtypes.BoolType):
            kind = _CEL_TYPE_NAMES.get(type(result).__name__, type(result).__name__)
            raise ConditionRuntimeError(f"the condition returned {kind}, not bool")
        return bool(result)

    def _run(self, variables: dict[str, Any]) -> Any:
        try:
            result = self._runner.evaluate(variables)
        except (CELEvalError, CELUnsupportedError) as error:
            raise ConditionRuntimeError(_describe(error, self.expression)) from error
        except RecursionError:
            raise ConditionRuntimeError("the condition nests too deeply to evaluate") from None
        except Exception as error:  # a celpy defect must deny, never crash the checkpoint
            raise ConditionRuntimeError(_scrub(f"{type(error).__name__}: {error}")) from error
        if isinstance(result, CELEvalError):
            raise ConditionRuntimeError(_describe(result, self.expression))
        return result


@functools.lru_cache(maxsize=2048)
def compile_condition(expression: str) -> CompiledCondition:
    """Compile a CEL condition (cached per expression); ``ConditionError`` with line and column if it is invalid."""
    if not isinstance(expression, str) or not expression.strip():
        raise ConditionError("the condition is empty: write a CEL expression that returns true or false")
    if len(expression) > MAX_CONDITION_LENGTH:
        raise ConditionError(f"the condition is longer than {MAX_CONDITION_LENGTH} characters")
    with _environment_lock:
        environment = _celpy_environment()
        try:
            ast = environment.compile(expression)
        except celpy.CELParseError as error:
            raise _syntax_error(error) from None
        except RecursionError:
            raise ConditionError("the condition nests too deeply") from None
        runner = environment.program(ast, functions=_FUNCTIONS)
    if _depth(ast) > MAX_CONDITION_DEPTH:
        raise ConditionError("the condition nests too deeply: split it or use fewer nested parentheses")
    return CompiledCondition(expression, runner)


def _depth(tree: lark.Tree) -> int:
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, lark.Tree))
    return deepest


# --------------------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# The approval check
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# The facts each checkpoint offers
# --------------------------------------------------------------------------------------------------------------

_DETECTED = {
    "pii": "Counts of detected personal data by kind: map with email, phone, card, iban (ints), e.g. pii.card > 0.",
    "pii_types": "Kinds of personal data detected (list of strings), e.g. 'card' in pii_types.",
    "pii_found": "Whether any personal data was detected (bool).",
    "injection": "Whether a prompt-injection signal was detected (bool).",
    "injection_phrases": "The phrases that triggered the injection signal (list of strings).",
}
_MESSAGE_FACTS = {
    "text": "The message text (string).",
    "channel": "Where it comes from or goes to: conversation (a persona chat) or run (an agent run).",
    "persona": "Slug of the persona, or empty string when none.",
    "agent": "Slug of the agent, or empty string when none.",
    **_DETECTED,
    "length": "Length of the text in characters (int).",
}

FACTS: dict[str, dict[str, str]] = {
    "input": dict(_MESSAGE_FACTS),
    "output": dict(_MESSAGE_FACTS),
    "action": {
        "tool": "Name of the tool about to be called (string).",
        "risk": "The tool's risk level: low, medium, high or critical.",
        "side_effect": "read or write.",
        "args": "The tool call's arguments (map), e.g. args.amount; test with has(args.amount) when optional.",
        "agent": "Slug of the agent making the call.",
        "autonomy": "The agent's autonomy level: observe, propose, supervised or autonomous.",
        "budget": "Budget used so far (map): steps_used, steps_limit, tokens_used, tokens_limit, cost_used, "
        "cost_limit.",
        "pii": "Counts of personal data detected in the arguments' text, by kind: map with email, phone, card, "
        "iban (ints).",
        "pii_types": "Kinds of personal data detected in the arguments' text (list of strings).",
        "pii_found": "Whether any personal data was detected in the arguments' text (bool).",
        "injection": "Whether a prompt-injection signal was detected in the arguments' text (bool).",
        "injection_phrases": "The phrases in the arguments' text that triggered the injection signal (list).",
    },
}
