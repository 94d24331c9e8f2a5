"""Compiled CEL conditions: conversion of facts between plain Python and CEL values, ``CompiledCondition``
(evaluate to a bool, or compute a value) and ``compile_condition``, cached per expression, which refuses empty,
overlong or too deeply nested conditions with a ``ConditionError``."""

import functools
from collections.abc import Mapping
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.evaluation import CELEvalError, CELUnsupportedError

from governance.policies.constants import MAX_CONDITION_DEPTH, MAX_CONDITION_LENGTH
from governance.policies.errors import (
    _CEL_TYPE_NAMES,
    ConditionError,
    ConditionRuntimeError,
    _describe,
    _scrub,
    _syntax_error,
)
from governance.policies.functions import _FUNCTIONS, _celpy_environment, _environment_lock

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
