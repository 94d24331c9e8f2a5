"""The CEL functions that condition programs run with: numeric comparisons, ``in`` and arithmetic that
work across int, uint and double as the CEL specification says, ``matches`` with RE2, and the shared celpy
environment (created on first use, under a lock)."""

import operator
import threading
from collections.abc import Callable
from typing import Any

import celpy
import re2
from celpy import celtypes
from celpy.evaluation import CELEvalError, operator_in

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
