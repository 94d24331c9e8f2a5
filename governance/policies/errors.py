"""What goes wrong with a CEL condition, in words for a policy author: ``ConditionError`` (it does not
compile, with line and column) and ``ConditionRuntimeError`` (it failed while running), and the helpers that reword
lark's parse errors and celpy's evaluation errors in CEL's names, without the values of personal facts."""

import re
from collections.abc import Iterable
from typing import Any

import celpy
import lark


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
