"""Benchmark of conversations with a persona through the real HTTP API: turns per second and time per turn.

Run as ``python -m bench.persona`` (``make bench-persona``). Like ``bench.audit`` it never touches the dev or test
data: it creates and migrates a throw-away database next to the configured one (``bench_persona_<random>`` on
PostgreSQL, ``var/bench-persona-<random>.sqlite3`` on SQLite) and drops it at the end.

Setup, with the services, as people would do it: an Editor, two Approvers and a client (no role: an API client only
needs a token). The Editor drafts the style guide (the demo's ``brand-voice``) and a persona whose one flow has five
steps (ask a name, text → ask a quantity, number → branch on a CEL condition over the slots → say → end, closing the
conversation) and submits both; one Approver approves the style guide, the other the persona; they are released to
``production``. No guardrail policy is released, so a turn pays for the guardrail checkpoints with nothing to match.

The server is the product's own: gunicorn serving ``config.wsgi`` as ``make run`` starts it (2 workers, 4 threads
each, gthread), on a free loopback port, pointed at the throw-away database by ``DATABASE_URL``. Nothing in a turn
uses Redis, so none is started. The client logs in over the API (``POST /api/auth/token/``) and every request carries
``Authorization: Token ...``. Each client is a separate process with one keep-alive connection (``http.client``).

A conversation is ``POST /api/conversations/`` (the greeting) and three turns, ``POST .../messages/``: "I'd like to
order some tea" (starts the flow, asks for the name), a name (asks for the quantity), a quantity (branch, say, end:
the conversation closes). Every answer is checked: the status code, the conversation's status, the steps the replies
come from, the user's message stored as sent, the name in the confirmation. A failed request or a wrong answer is a
failure: the client notes it, drops that conversation and goes on with the next one (giving up after 25 failures in a
row), so that the report counts every failure, names the exceptions in the server's log, and the figures cover only
the requests answered as expected. Any failure makes the exit status non-zero.

What is measured, in this order: a warm-up (4 clients, not counted); 1 client running ``--conversations``
conversations; the baseline, 1 client alternating ``GET /healthz`` (the whole middleware stack, no database) and
``GET /api/conversations/{id}/`` (token auth and a read of a finished transcript); 4 clients sharing
``--conversations`` conversations. Throughput is turns over the wall time from the clients' start to the last one's
finish; the conversation starts are in that time but not in the count.

Server time: the product sends no ``Server-Timing`` header and this benchmark adds nothing to it. The client's round
trip on loopback (request sent to response read) is an upper bound of the server's time. The server's own time is
gunicorn's request time (``%(D)s`` of its access log, which this benchmark turns on, joined to the client's requests
by ``X-Request-ID``): from the parsed request to the last byte of the response written, so the whole Django
application, its database work and the commit included; the closing of the request (Django's ``request_finished``,
which closes a SQLite connection) comes after it.

The target is the issue's: p50 server time per turn at most 10 ms (1 client). Missing it is reported, not fatal: the
exit status is non-zero only when something fails.
"""

# ruff: noqa: E402  (Django must be set up before the models are imported)

import argparse
import contextlib
import functools
import http.client
import json
import multiprocessing
import os
import queue
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

import gunicorn
from django.conf import settings
from django.db import connections

from audit.context import Actor, audit_context
from bench.common import (
    BenchError,
    bench_database_url,
    database_description,
    make_user,
    percentile,
    print_heading,
    print_total,
    release,
    throwaway_database,
    verdict,
)
from demo import personas as demo_personas
from governance.roles import Role
from personas.services import PERSONA_KIND, STYLE_GUIDE_KIND

POSTGRES_BENCH_DATABASE = "bench_persona"
SQLITE_BENCH_FILE = "bench-persona.sqlite3"
TARGET_P50_MS = 10.0  # the target: p50 server time per turn
WORKERS = 2  # as config.serve (make run) starts gunicorn
THREADS = 4
CONCURRENT_CLIENTS = 4
BARRIER_TIMEOUT = 120.0
STARTUP_TIMEOUT = 60.0
REQUEST_TIMEOUT = 60.0
MAX_FAILURES_IN_A_ROW = 25  # a client gives up after this many failed conversations in a row
ACCESS_LOG_FORMAT = "%({x-request-id}i)s %(s)s %(D)s %(p)s"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Deadlock\w*): .*$", re.MULTILINE)

STYLE_GUIDE_SLUG = "brand-voice"
PERSONA_SLUG = "bench-shop"
PERSONA_NAME = "Tess"
PERSONA_SPEC: dict[str, Any] = {
    "tone": "Warm and brief, like a helpful shop assistant.",
    "greeting": "Hi, I'm {{persona_name}}! Say order and I'll take your tea order.",
    "fallback": "Sorry, I didn't catch that. Say order and I'll take your tea order.",
    "handover": "I'm passing you to a colleague. They'll reply here shortly.",
    "style_guide": {"slug": STYLE_GUIDE_SLUG, "version": 1},
    "pii": "redact",
    "flows": [
        {
            "id": "order",
            "title": "Order tea",
            "trigger": {"keywords": ["order", "buy"]},
            "steps": [
                {
                    "id": "ask_name",
                    "type": "ask",
                    "slot": "name",
                    "prompt": "Lovely! What name should I put the order under?",
                    "validation": {"min_length": 2, "max_length": 80},
                },
                {
                    "id": "ask_quantity",
                    "type": "ask",
                    "slot": "quantity",
                    "slot_type": "number",
                    "prompt": "How many boxes would you like, {{name}}?",
                    "validation": {"min": 1, "max": 1000, "integer": True},
                    "reprompt": "Just the number of boxes, please.",
                },
                {"id": "route", "type": "branch", "cases": [{"when": "slots.quantity > 100", "goto": "done"}]},
                {"id": "confirm", "type": "say", "text": "Good news, {{name}}: {{quantity}} boxes are in stock."},
                {"id": "done", "type": "end", "text": "Your order is in. Thanks for shopping with us!", "close": True},
            ],
        }
    ],
}
NAMES = ("Alex Morgan", "Sam Lee", "Priya Shah", "Jonas Berg", "Maria Rossi", "Kenji Sato", "Ada Byrne")


# --- one client: a keep-alive connection and the conversation script --------------------------------------------


@dataclass(frozen=True)
class Record:
    kind: str  # start, turn1, turn2, turn3, healthz, conversation
    request_id: str
    seconds: float  # client round trip: request sent to response read


@dataclass(frozen=True)
class Step:
    kind: str
    text: str
    replies: tuple[str, ...]  # the steps the persona's replies come from
    status: str  # the conversation's status after the turn


def script(number: int) -> list[Step]:
    """The three turns of conversation ``number``: every one takes the flow through all five steps."""
    name = NAMES[number % len(NAMES)]
    quantity = 1 + number % 12  # at most 100: the branch goes on to the say step
    return [
        Step("turn1", "I'd like to order some tea", ("ask_name",), "active"),
        Step("turn2", name, ("ask_quantity",), "active"),
        Step("turn3", str(quantity), ("confirm", "done"), "closed"),
    ]


class Api:
    """One keep-alive HTTP/1.1 connection to the server, with the client's token."""

    def __init__(self, port: int, token: str | None) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        self.token = token
        self.records: list[Record] = []
        self.connects = 0

    def connect(self) -> None:
        self.connection.connect()
        self.connects += 1

    def call(self, kind: str, method: str, path: str, body: dict[str, Any] | None = None, *, expect: int) -> Any:
        request_id = str(uuid.uuid4())
        headers = {"Accept": "application/json", "X-Request-ID": request_id}
        if self.token is not None:
            headers["Authorization"] = f"Token {self.token}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.connection.sock is None:  # the server closed the last one (http.client reopens it)
            self.connects += 1
        started = time.perf_counter()
        self.connection.request(method, path, body=payload, headers=headers)
        response = self.connection.getresponse()
        raw = response.read()
        seconds = time.perf_counter() - started
        if response.status != expect:
            shown = raw[:300].decode(errors="replace") if raw.startswith(b"{") else "(not the API's JSON error)"
            raise BenchError(f"{method} {path} answered {response.status}, expected {expect}: {shown}")
        if response.getheader("X-Request-ID") != request_id:
            raise BenchError(f"{method} {path} did not echo X-Request-ID {request_id}")
        self.records.append(Record(kind, request_id, seconds))
        return json.loads(raw)

    def close(self) -> None:
        self.connection.close()


def _mismatch(what: str, got: Any, expected: Any, body: Any) -> BenchError:
    return BenchError(f"{what}: got {got!r}, expected {expected!r}; the answer was {json.dumps(body)[:800]}")


def converse(api: Api, number: int) -> str:
    """One whole conversation, every answer checked; the conversation's id."""
    started = api.call("start", "POST", "/api/conversations/", {"persona": PERSONA_SLUG}, expect=201)
    greeting = [(m["role"], m["text"]) for m in started["messages"]]
    if started["status"] != "active" or len(greeting) != 1 or greeting[0][0] != "persona":
        raise _mismatch("the conversation's start", (started["status"], greeting), "one greeting, active", started)
    if PERSONA_NAME not in greeting[0][1]:
        raise _mismatch("the greeting", greeting[0][1], f"a text naming {PERSONA_NAME}", started)
    conversation = started["id"]
    for step in script(number):
        turn = api.call(
            step.kind, "POST", f"/api/conversations/{conversation}/messages/", {"text": step.text}, expect=201
        )
        if turn["status"] != step.status:
            raise _mismatch(f"the status after {step.kind}", turn["status"], step.status, turn)
        if (turn["message"]["role"], turn["message"]["text"]) != ("user", step.text):
            raise _mismatch(f"the user's message of {step.kind}", turn["message"], step.text, turn)
        replies = tuple(reply["step"] for reply in turn["replies"] if reply["role"] == "persona")
        if replies != step.replies or len(turn["replies"]) != len(step.replies):
            raise _mismatch(f"the replies to {step.kind}", replies, step.replies, turn)
    name = script(number)[1].text
    if name not in turn["replies"][0]["text"]:
        raise _mismatch("the confirmation", turn["replies"][0]["text"], f"a text naming {name}", turn)
    return str(conversation)


def baseline(api: Api, conversation: str, requests: int) -> str:
    """The same round trip to cheap endpoints, alternating so that drift affects both alike."""
    for _ in range(requests):
        if api.call("healthz", "GET", "/healthz", expect=200) != {"status": "ok"}:
            raise BenchError("GET /healthz did not answer {'status': 'ok'}")
        read = api.call("conversation", "GET", f"/api/conversations/{conversation}/", expect=200)
        if read["id"] != conversation or read["status"] != "closed" or len(read["messages"]) != 8:
            raise _mismatch("the finished conversation", (read["status"], len(read["messages"])), "closed, 8", read)
    return conversation


# --- client processes ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Work:
    kind: str  # conversations or baseline
    first: int  # the first conversation's number (names and quantities vary with it)
    count: int  # conversations, or baseline pairs
    conversation: str = ""  # for the baseline: a finished conversation to read


@dataclass(frozen=True)
class ClientOutcome:
    client: int
    records: list[Record]  # the requests answered as expected
    conversations: list[str]  # the conversations run to their end
    failures: list[str]  # what went wrong, one entry per conversation (or baseline pair) abandoned
    connects: int
    started: float
    finished: float
    error: str | None = None  # the client itself crashed


def attempt(api: Api, failures: list[str], action: Callable[[], str]) -> str | None:
    """Run one conversation (or baseline pair); on a failed request or a wrong answer, note it, drop the
    connection and return None, so that the run goes on and reports every failure, not just the first."""
    try:
        return action()
    except Exception as error:
        failures.append(str(error) if isinstance(error, BenchError) else f"{type(error).__name__}: {error}")
        api.close()  # the next request opens a fresh connection
        return None


def client_main(
    port: int, token: str, client: int, work: Work, barrier: Barrier, results: "Queue[ClientOutcome]"
) -> None:
    """Body of one client process: connect, wait for the others, run its work, report."""
    api = Api(port, token)
    try:
        api.connect()
        barrier.wait(timeout=BARRIER_TIMEOUT)
        started = time.perf_counter()
        conversations: list[str] = []
        failures: list[str] = []
        in_a_row = 0
        for index in range(work.count):
            if work.kind == "baseline":
                done = attempt(api, failures, functools.partial(baseline, api, work.conversation, 1))
            else:
                done = attempt(api, failures, functools.partial(converse, api, work.first + index))
                if done is not None:
                    conversations.append(done)
            in_a_row = 0 if done is not None else in_a_row + 1
            if in_a_row >= MAX_FAILURES_IN_A_ROW:
                failures[-1] += f" (client {client} then gave up: {in_a_row} failures in a row)"
                break
        finished = time.perf_counter()
        results.put(ClientOutcome(client, api.records, conversations, failures, api.connects, started, finished))
    except BaseException:
        barrier.abort()
        results.put(ClientOutcome(client, [], [], [], api.connects, 0.0, 0.0, error=traceback.format_exc()))
    finally:
        api.close()


@dataclass(frozen=True)
class Phase:
    name: str
    clients: int
    conversations: int  # run to their end
    seconds: float
    records: list[Record]
    finished: list[str]  # ids of the conversations run to their end
    failures: list[str]
    connects: int

    def turns(self) -> int:
        return sum(1 for record in self.records if record.kind.startswith("turn"))


def run_clients(name: str, port: int, token: str, works: list[Work]) -> Phase:
    """One client process per ``Work``, released together; timed from the release to the last finish."""
    context = multiprocessing.get_context("fork")
    connections.close_all()  # the clients never use the database; they must not share the parent's connection
    barrier = context.Barrier(len(works) + 1)
    results: Queue[ClientOutcome] = context.Queue()
    processes = [
        context.Process(
            target=client_main,
            args=(port, token, client, work, barrier, results),
            name=f"bench-persona-client-{client}",
        )
        for client, work in enumerate(works)
    ]
    for process in processes:
        process.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a client failed to connect: it reports why below
        barrier.wait(timeout=BARRIER_TIMEOUT)
    outcomes: list[ClientOutcome] = []
    while len(outcomes) < len(works):
        try:
            outcomes.append(results.get(timeout=1.0))
        except queue.Empty:
            if not any(process.is_alive() for process in processes):
                break
    for process in processes:
        process.join()
    errors = [outcome.error for outcome in outcomes if outcome.error]
    if errors:
        raise BenchError(f"{name}: {len(errors)} client(s) failed; the first:\n{errors[0]}")
    if len(outcomes) < len(works):
        codes = [process.exitcode for process in processes]
        raise BenchError(f"{name}: only {len(outcomes)} of {len(works)} clients reported (exit codes {codes})")
    return Phase(
        name=name,
        clients=len(works),
        conversations=sum(len(outcome.conversations) for outcome in outcomes),
        seconds=max(o.finished for o in outcomes) - min(o.started for o in outcomes),
        records=[record for outcome in outcomes for record in outcome.records],
        finished=[conversation for outcome in outcomes for conversation in outcome.conversations],
        failures=[failure for outcome in outcomes for failure in outcome.failures],
        connects=sum(outcome.connects for outcome in outcomes),
    )


def conversation_works(clients: int, conversations: int, first: int) -> list[Work]:
    """``conversations`` shared out among ``clients`` as evenly as they go."""
    share, extra = divmod(conversations, clients)
    works, number = [], first
    for client in range(clients):
        count = share + (1 if client < extra else 0)
        works.append(Work("conversations", number, count))
        number += count
    return works


# --- the server ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Server:
    """gunicorn serving ``config.wsgi`` on the throw-away database, as ``make run`` starts it, plus an access log."""

    def __init__(self, database_url: str, logs: Path) -> None:
        self.port = free_port()
        self.access_log = logs / "access.log"
        self.error_log = logs / "gunicorn.log"
        command = [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{self.port}"]
        command += ["--workers", str(WORKERS), "--threads", str(THREADS), "--graceful-timeout", "5"]
        command += ["--access-logfile", str(self.access_log), "--access-logformat", ACCESS_LOG_FORMAT]
        command += ["--error-logfile", "-"]
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url,
            "STEWARD_VAR_DIR": str(settings.VAR_DIR),
        }
        self.log_handle = self.error_log.open("ab")
        self.process = subprocess.Popen(  # noqa: S603  (a fixed argv: this interpreter's gunicorn)
            command, cwd=settings.BASE_DIR, env=environment, stdout=self.log_handle, stderr=subprocess.STDOUT
        )

    def log_tail(self, lines: int = 40) -> str:
        text = self.error_log.read_text(errors="replace") if self.error_log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until_healthy(self) -> float:
        """Poll ``GET /healthz`` until it answers 200; the seconds it took."""
        started = time.monotonic()
        while True:
            if self.process.poll() is not None:
                raise BenchError(f"gunicorn exited with {self.process.returncode}:\n{self.log_tail()}")
            probe = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                probe.request("GET", "/healthz")
                if probe.getresponse().status == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            finally:
                probe.close()
            if time.monotonic() - started > STARTUP_TIMEOUT:
                raise BenchError(f"gunicorn did not answer /healthz within {STARTUP_TIMEOUT:.0f} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM to the master, which stops its workers); kill it if it takes too long."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log_handle.close()

    def errors(self) -> Counter[str]:
        """The exceptions in the server's log (the last line of each traceback Django logged), counted."""
        text = self.error_log.read_text(errors="replace") if self.error_log.exists() else ""
        return Counter(match.group(0) for match in EXCEPTION_LINE.finditer(text))

    def server_times(self) -> dict[str, tuple[float, int]]:
        """From the access log (read once the server has stopped): request id → (seconds, worker pid)."""
        times: dict[str, tuple[float, int]] = {}
        for line in self.access_log.read_text().splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[2].isdigit():
                times[parts[0]] = (int(parts[2]) / 1e6, int(parts[3].strip("<>")))
        return times


# --- setup through the services -----------------------------------------------------------------------------------


def prepare(password: str) -> str:
    """The cast, the style guide and the persona, released; the client's username."""
    with audit_context(actor=Actor.system("bench")):
        editor = make_user("bench-editor", Role.EDITOR, password)
        approvers = [make_user(f"bench-approver{n}", Role.APPROVER, password) for n in ("", "2")]
        client = make_user("bench-client", None, password)
        style_guide = demo_personas.example(STYLE_GUIDE_SLUG)
        release(editor, approvers, STYLE_GUIDE_KIND, STYLE_GUIDE_SLUG, "Brand voice", style_guide)
        release(editor, approvers[::-1], PERSONA_KIND, PERSONA_SLUG, PERSONA_NAME, PERSONA_SPEC)
    return client.username


def obtain_token(port: int, username: str, password: str) -> str:
    api = Api(port, None)
    try:
        answer = api.call("token", "POST", "/api/auth/token/", {"username": username, "password": password}, expect=200)
    finally:
        api.close()
    return str(answer["token"])


# --- figures ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    """p50/p90/p99 in milliseconds of the client round trips and of the server's times of some requests."""

    count: int
    client: tuple[float, float, float]
    server: tuple[float, float, float]

    @classmethod
    def of(cls, records: Sequence[Record], times: dict[str, tuple[float, int]]) -> "Latency":
        if not records:
            raise BenchError("no requests to measure")
        missing = [record.request_id for record in records if record.request_id not in times]
        if missing:
            raise BenchError(f"{len(missing)} requests are missing from gunicorn's access log, e.g. {missing[0]}")
        client = sorted(record.seconds * 1e3 for record in records)
        server = sorted(times[record.request_id][0] * 1e3 for record in records)
        return cls(
            count=len(records),
            client=(percentile(client, 50), percentile(client, 90), percentile(client, 99)),
            server=(percentile(server, 50), percentile(server, 90), percentile(server, 99)),
        )


def of_kind(phase: Phase, match: Callable[[str], bool]) -> list[Record]:
    return [record for record in phase.records if match(record.kind)]


def is_turn(kind: str) -> bool:
    return kind.startswith("turn")


def latency_row(label: str, records: Sequence[Record], times: dict[str, tuple[float, int]]) -> Latency | None:
    if not records:
        print(f"{label:<48}{0:>6}  (no request answered as expected)")
        return None
    latency = Latency.of(records, times)
    c50, c90, c99 = latency.client
    s50, s90, s99 = latency.server
    print(f"{label:<48}{latency.count:>6}{c50:>8.2f}{c90:>8.2f}{c99:>8.2f}  |{s50:>8.2f}{s90:>8.2f}{s99:>8.2f}")
    return latency


def report(
    database: str,
    bench_name: str,
    port: int,
    phases: list[Phase],
    base: Phase,
    warmup: Phase,
    times: dict[str, tuple[float, int]],
    server_errors: Counter[str],
    total: float,
) -> None:
    single = phases[0]
    print_heading(
        "Persona conversations over HTTP",
        database,
        bench_name,
        f", gunicorn {gunicorn.__version__} ({WORKERS} workers x {THREADS} threads, as make run) on 127.0.0.1:{port}",
    )
    print(
        f"Persona {PERSONA_SLUG!r} v1: one flow of 5 steps (ask name -> ask quantity -> branch on CEL -> say -> end), "
        f"style guide {STYLE_GUIDE_SLUG!r} v1, pii redact, no guardrail policy released"
    )
    print("A conversation: POST /api/conversations/ (greeting), then 3 turns POST /api/conversations/{id}/messages/")
    print()
    print("Throughput, clients in separate processes, each with one keep-alive connection, whole conversations")
    header = (
        f"{'clients':>7}{'conversations':>15}{'failed':>8}{'turns':>7}{'seconds':>9}{'turns/s':>9}"
        f"{'conversations/s':>17}{'connections':>13}"
    )
    print(header)
    print("-" * len(header))
    for phase in phases:
        print(
            f"{phase.clients:>7}{phase.conversations:>15}{len(phase.failures):>8}{phase.turns():>7}"
            f"{phase.seconds:>9.2f}{phase.turns() / phase.seconds:>9.1f}{phase.conversations / phase.seconds:>17.1f}"
            f"{phase.connects:>13}"
        )
    print("(turns/s: turns answered as expected over the wall time, which includes the conversation starts)")
    print()
    print("Latency per request, ms: client round trip on loopback | server time (gunicorn's request time)")
    header = f"{'what':<48}{'n':>6}{'p50':>8}{'p90':>8}{'p99':>8}  |{'p50':>8}{'p90':>8}{'p99':>8}"
    print(header)
    print("-" * len(header))
    latency_row("1 client: start (greeting)", of_kind(single, lambda kind: kind == "start"), times)
    latency_row("1 client: turn 1, starts the flow, asks name", of_kind(single, lambda kind: kind == "turn1"), times)
    latency_row("1 client: turn 2, name, asks quantity", of_kind(single, lambda kind: kind == "turn2"), times)
    latency_row("1 client: turn 3, quantity, branch, say, end", of_kind(single, lambda kind: kind == "turn3"), times)
    turn = latency_row("1 client: every turn", of_kind(single, is_turn), times)
    for phase in phases[1:]:
        latency_row(f"{phase.clients} clients: every turn", of_kind(phase, is_turn), times)
    healthz = latency_row("baseline, 1 client: GET /healthz", of_kind(base, lambda kind: kind == "healthz"), times)
    read = latency_row(
        "baseline, 1 client: GET /api/conversations/{id}/", of_kind(base, lambda kind: kind == "conversation"), times
    )
    print()
    if turn is not None and healthz is not None and read is not None:
        print(
            f"A turn over a bare request (p50, 1 client): server {turn.server[0] / healthz.server[0]:.1f}x "
            f"GET /healthz, {turn.server[0] / read.server[0]:.1f}x GET conversation; "
            f"client {turn.client[0] / healthz.client[0]:.1f}x and {turn.client[0] / read.client[0]:.1f}x"
        )
    pids = Counter(times[record.request_id][1] for phase in phases for record in phase.records)
    print(
        f"Requests per gunicorn worker: {', '.join(str(count) for _, count in pids.most_common())}; "
        "server time is gunicorn's %(D)s: parsed request to response written (Django, database, commit included)"
    )
    print()
    print(f"Target (issue): p50 server time per turn <= {TARGET_P50_MS:.0f} ms, 1 client")
    if turn is None:
        print("  not measured: no turn was answered as expected")
    else:
        value, upper = turn.server[0], turn.client[0]
        print(
            f"  server time p50 {value:6.2f} ms  {verdict(value <= TARGET_P50_MS)}"
            f"   (client round trip p50 {upper:.2f} ms, an upper bound: "
            f"{verdict(upper <= TARGET_P50_MS, ('met', 'not met'))})"
        )
    failed = [phase for phase in [warmup, *phases, base] if phase.failures]
    if failed:
        print()
        print("FAILURES (each one abandoned a conversation or a baseline pair; the figures above leave them out)")
        for phase in failed:
            examples = Counter(UUID.sub("{id}", failure.splitlines()[0])[:240] for failure in phase.failures)
            print(f"  {phase.name}: {len(phase.failures)} failed")
            for example, count in examples.most_common(3):
                print(f"    {count} x {example}")
        if server_errors:
            print("  exceptions in the server's log:")
            for line, count in server_errors.most_common(5):
                print(f"    {count} x {line[:240]}")
    print_total(total)


# --- the run ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    conversations: int
    baseline: int
    warmup: int
    clients: list[int] = field(default_factory=lambda: [1, CONCURRENT_CLIENTS])


def parse_args(argv: Sequence[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        prog="python -m bench.persona",
        description="Benchmark conversation turns with a persona through the real HTTP API (gunicorn) "
        "on a throw-away copy of the configured database.",
    )
    parser.add_argument(
        "--conversations", type=int, default=None, help="conversations per run, 3 turns each (default 350)"
    )
    parser.add_argument("--baseline", type=int, default=None, help="baseline requests of each kind (default 500)")
    parser.add_argument("--quick", action="store_true", help="a tiny run, to check that the benchmark works")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    plan = Plan(
        conversations=args.conversations if args.conversations is not None else (12 if quick else 350),
        baseline=args.baseline if args.baseline is not None else (20 if quick else 500),
        warmup=1 if quick else 5,
    )
    if plan.conversations < CONCURRENT_CLIENTS:
        parser.error(f"--conversations must be at least {CONCURRENT_CLIENTS}")
    if plan.baseline < 1:
        parser.error("--baseline must be at least 1")
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse_args(argv)
    run_started = time.perf_counter()
    with throwaway_database(POSTGRES_BENCH_DATABASE, SQLITE_BENCH_FILE) as bench_name:
        logs = Path(tempfile.mkdtemp(prefix="bench-persona-"))
        server: Server | None = None
        try:
            database = database_description()
            password = secrets.token_urlsafe(16)
            username = prepare(password)
            connections.close_all()
            server = Server(bench_database_url(bench_name), logs)
            server.wait_until_healthy()
            token = obtain_token(server.port, username, password)
            warmup = run_clients(
                "warm-up",
                server.port,
                token,
                conversation_works(CONCURRENT_CLIENTS, CONCURRENT_CLIENTS * plan.warmup, 0),
            )
            phases: list[Phase] = []
            base: Phase | None = None
            first = 10**6
            for clients in plan.clients:
                phase = run_clients(
                    f"{clients} client(s)", server.port, token, conversation_works(clients, plan.conversations, first)
                )
                first += plan.conversations
                phases.append(phase)
                if clients == 1:
                    if not phase.finished:
                        raise BenchError(
                            "no conversation of the 1-client run finished: nothing to read for the baseline"
                        )
                    reading = Work("baseline", 0, plan.baseline, conversation=phase.finished[-1])
                    base = run_clients("baseline", server.port, token, [reading])
            if base is None:
                raise BenchError("no 1-client run to take the baseline after")
            port = server.port
            server.stop()
            times, server_errors = server.server_times(), server.errors()
            server = None
            report(
                database,
                bench_name,
                port,
                phases,
                base,
                warmup,
                times,
                server_errors,
                time.perf_counter() - run_started,
            )
            failures = sum(len(phase.failures) for phase in [warmup, *phases, base])
        except BenchError:
            if server is not None:
                print(server.log_tail(), file=sys.stderr)
            raise
        finally:
            if server is not None:
                server.stop()
            shutil.rmtree(logs, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"\nbench.persona FAILED: {error}", file=sys.stderr)
        sys.exit(1)
