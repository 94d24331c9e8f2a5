"""Tools registered in code: the ``@tool`` decorator, the registry, and argument schemas from type hints.

A tool is a plain function of keyword arguments returning something JSON-serialisable::

    @tool("inventory.check_stock", "How many units of a SKU are in stock.", risk="low")
    def check_stock(sku: str) -> dict: ...

Its argument schema is derived from the type hints (``str``, ``int``, ``float``, ``bool``, ``list[...]``,
``dict``, ``Literal[...]``, ``X | None``; a parameter with a default is optional; ``idempotency_key`` is filled
in by the runtime) unless one is given. Every registered tool gets its ``Tool`` row (which grants and runs refer
to) from ``agents.services.tools_sync`` (after every ``migrate`` and by ``manage.py sync_tools``), which submits its
definition as declared here for review as a version of kind ``tool``: runs use the versions their agent version
pins (``agents.tool_versions``). Running a tool never crashes the caller: a tool that raises, times out or returns
something that is not JSON gives a ``ToolFailure`` with the reason.
"""

import contextvars
import inspect
import json
import queue
import signal
import threading
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import jsonschema
from django.db import connections

RISKS = ("low", "medium", "high", "critical")
# A tool function with a parameter of this name gets the step's idempotency key (the same on a retry after a
# crash); it is not an argument the model sees.
IDEMPOTENCY_KEY = "idempotency_key"
SIDE_EFFECTS = ("read", "write")


@dataclass(frozen=True)
class Compensation:
    """The tool that undoes a call, and its arguments: each a CEL expression over ``args`` (the original call's
    arguments) and ``result`` (what it returned), e.g. ``{"order_id": "result.order_id"}``."""

    tool: str
    arguments: Mapping[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "arguments": dict(self.arguments)}


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    function: Callable[..., Any]
    parameters: dict[str, Any]
    side_effect: str = "read"
    risk: str = "low"
    idempotent: bool = True
    timeout: float = 10.0
    compensation: Compensation | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ToolSpec] = {}


def _schema_of(annotation: Any) -> dict[str, Any]:
    origin = get_origin(annotation)
    if annotation is str:
        return {"type": "string"}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    if annotation in (dict, Any) or origin is dict:
        return {"type": "object"} if annotation is not Any else {}
    if annotation is list or origin is list:
        args = get_args(annotation)
        return {"type": "array", **({"items": _schema_of(args[0])} if args else {})}
    if origin is Literal:
        return {"enum": list(get_args(annotation))}
    if origin in (Union, types.UnionType):
        options = [arg for arg in get_args(annotation) if arg is not type(None)]
        schemas = [_schema_of(option) for option in options]
        nullable = len(options) < len(get_args(annotation))
        schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
        return {"anyOf": [schema, {"type": "null"}]} if nullable else schema
    raise TypeError(f"cannot derive a JSON Schema from the type {annotation!r}: give parameters= explicitly")


def parameters_from_hints(function: Callable[..., Any]) -> dict[str, Any]:
    """The JSON Schema of ``function``'s keyword arguments, from its type hints."""
    hints = get_type_hints(function)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) or name == IDEMPOTENCY_KEY:
            continue
        if name not in hints:
            raise TypeError(f"the parameter {name!r} of {function.__qualname__} has no type hint")
        properties[name] = _schema_of(hints[name])
        if parameter.default is inspect.Parameter.empty:
            required.append(name)
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def tool(
    name: str,
    description: str,
    *,
    side_effect: Literal["read", "write"] = "read",
    risk: Literal["low", "medium", "high", "critical"] = "low",
    idempotent: bool = True,
    timeout: float = 10.0,
    parameters: dict[str, Any] | None = None,
    compensation: Compensation | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``function`` as the tool ``name`` (see the module docstring)."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        schema = parameters if parameters is not None else parameters_from_hints(function)
        jsonschema.Draft202012Validator.check_schema(schema)
        if name in _REGISTRY and _REGISTRY[name].function is not function:
            raise ValueError(f"a tool called {name!r} is registered already")
        _REGISTRY[name] = ToolSpec(
            name=name,
            description=description,
            function=function,
            parameters=schema,
            side_effect=side_effect,
            risk=risk,
            idempotent=idempotent,
            timeout=timeout,
            compensation=compensation,
        )
        return function

    return register


def registered() -> dict[str, ToolSpec]:
    return dict(_REGISTRY)


class ToolFailure(Exception):
    """A tool call that did not succeed: bad arguments, an error in the tool, a timeout, a result that is not JSON."""


_validators: dict[int, tuple[dict[str, Any], jsonschema.Draft202012Validator]] = {}


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """The validator of ``schema``, made once per schema object (kept with it, so its id cannot be another's)."""
    entry = _validators.get(id(schema))
    if entry is None or entry[0] is not schema:
        if len(_validators) >= 1000:
            _validators.clear()
        entry = _validators[id(schema)] = (schema, jsonschema.Draft202012Validator(schema))
    return entry[1]


def validate_arguments(schema: dict[str, Any], arguments: Any) -> None:
    """``ToolFailure`` naming every problem when ``arguments`` do not satisfy the tool's schema."""
    errors = sorted(_validator(schema).iter_errors(arguments), key=lambda e: list(e.path))
    if errors:
        problems = "; ".join(
            (".".join(str(part) for part in error.path) + ": " if error.path else "") + error.message
            for error in errors
        )
        raise ToolFailure(f"invalid arguments: {problems}")


class _CallThreads:
    """Daemon threads that run tool calls, each reused once its call ended (starting a thread costs more than a
    quick call); a new one is started when none is idle, so a call that never ends holds up no other."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.idle = 0
        self.lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self.lock:
            if self.idle:
                self.idle -= 1
            else:
                threading.Thread(target=self._serve, daemon=True, name="tool-call").start()
        self.jobs.put(job)

    def _serve(self) -> None:
        while True:
            self.jobs.get()()
            with self.lock:
                self.idle += 1


_threads = _CallThreads()


class _TimeUp(BaseException):
    """Raised into a call made in the main thread when its time is up (not an ``Exception``: a tool's own
    ``except Exception`` does not swallow it)."""


def call_with_timeout(function: Callable[..., Any], arguments: dict[str, Any], timeout: float) -> Any:
    """Run ``function(**arguments)`` within ``timeout`` seconds; ``ToolFailure`` on an error, a timeout or a result
    that is not JSON. Either way the call runs in a context of its own (it sees none of the caller's context
    variables, such as an audit batch being collected).

    In a process's main thread with no transaction open (a worker's task), the call is made right here and a timer
    signal (``SIGALRM``) interrupts it when its time is up: a call that timed out does not go on running. Anywhere
    else it is made in a helper thread, on that thread's own database connection, and a timed-out call is
    abandoned (its thread is a daemon), never awaited."""
    outcome = _here(function, arguments, timeout) if _may_call_here() else _in_thread(function, arguments, timeout)
    if "result" not in outcome:
        error = outcome.get("error")
        if error is None:
            raise ToolFailure(f"timed out after {timeout:g} s")
        if isinstance(error, ToolFailure):
            raise error
        raise ToolFailure(f"{type(error).__name__}: {error}")
    try:
        return json.loads(json.dumps(outcome["result"], allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ToolFailure(f"the tool returned something that is not JSON: {error}") from None


def _may_call_here() -> bool:
    """Whether a call may be made in this thread: the main thread, with the timer signal free and no transaction
    open (the call's writes are its own, as on a connection of its own)."""
    return (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN)
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        and not any(connection.in_atomic_block for connection in connections.all(initialized_only=True))
    )


def _here(function: Callable[..., Any], arguments: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The call made in this (the main) thread: ``{"result": …}``, ``{"error": …}``, or ``{}`` when its time was up.
    An interruption of the worker itself (a cold shutdown, ``KeyboardInterrupt``) is not the tool's: it goes on up."""

    def time_up(signum: int, frame: Any) -> None:
        raise _TimeUp

    signal.signal(signal.SIGALRM, time_up)
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return {"result": contextvars.Context().run(function, **arguments)}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _TimeUp:
        connections.close_all()  # a query it was interrupted in leaves its connection in doubt
        return {}
    except Exception as error:  # the tool's failure is reported, never raised into the worker
        return {"error": error}
    finally:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)


def _in_thread(function: Callable[..., Any], arguments: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The call made in a helper thread (see ``call_with_timeout``), as ``_here`` answers."""
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["result"] = function(**arguments)
        except BaseException as error:  # the tool's failure is reported, never raised into the worker
            outcome["error"] = error
        finally:
            connections.close_all()  # the thread's own database connections, if the tool opened any
            done.set()

    _threads.submit(target)
    return outcome if done.wait(timeout) else {}
