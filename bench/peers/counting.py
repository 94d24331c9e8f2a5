"""Counting what a contender asks of PostgreSQL: statements on the client, transactions on the server.

**Statements**, exactly, on the client: the peers' psycopg connections are ``CountingConnection`` (or
``CountingAsyncConnection``) with a counting cursor. Every statement a cursor sends (``execute``, each row of
``executemany``, prepared or not, pipelined or not) passes ``_maybe_prepare_gen``, and every command psycopg sends
by itself (``BEGIN``, ``COMMIT``, ``ROLLBACK``, savepoints, ``DEALLOCATE``) passes ``_exec_command``: both are
counted, so the figure has transaction control in it, as Django's query log has for Steward. These are psycopg
3.3's private methods (pinned in ``requirements-bench.txt``). While a ``Tally`` is active, only the statements of
its thread are counted when it names one (DBOS's own background threads share its connection pool).

**Transactions**, on the server: ``xact_commit + xact_rollback`` of the contender's own database in
``pg_stat_database``, read from a connection to another database after ``pg_stat_clear_snapshot()``. A backend
sends its counts at the latest when it exits, so the figures are read once no backend is connected to the database
any more and they stopped moving. Connecting and disconnecting cost transactions of their own (one a session) and
a contender's setup costs its own: ``per_run`` cancels both by counting a pass of one run and a pass of ``1 + n``
runs, each on fresh connections, and dividing the difference by ``n``. A pass during which autovacuum or
autoanalyze worked on the database is done again (theirs are transactions too), up to three times, then "n/a".

Transactions are also counted on the client (``Tally.transactions``): a statement or a ``BEGIN`` sent while the
connection is idle (no transaction open) starts one. That rule does not hold in pipeline mode, where statements up
to a sync share one: a tally that saw a pipeline has no client count. The client's count is the one for DBOS,
whose background threads use the same database while it runs (the server's figure can include theirs; the
tally counts the thread that runs the workflow only).
"""

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import pq

from bench.common import BenchError, unique_suffix

FLUSH_TIMEOUT = 30.0
ATTEMPTS = 3


@dataclass
class Tally:
    """Statements and client-counted transactions while active; ``thread``: count only that thread's."""

    thread: int | None = None
    statements: int = 0
    transactions: int = 0
    pipelined: bool = False


_active: Tally | None = None


@contextlib.contextmanager
def tally(thread: int | None = None) -> Iterator[Tally]:
    """Count the counting connections' statements (of ``thread`` only, when given) until the block ends."""
    global _active
    _active = found = Tally(thread=thread)
    try:
        yield found
    finally:
        _active = None


def _note(connection: psycopg.BaseConnection[Any]) -> None:
    """One statement about to be sent; it starts a transaction when none is open (outside pipeline mode)."""
    counting = _active
    if counting is None or (counting.thread is not None and counting.thread != threading.get_ident()):
        return
    counting.statements += 1
    if connection._pipeline is not None:
        counting.pipelined = True
    elif connection.pgconn.transaction_status == pq.TransactionStatus.IDLE:
        counting.transactions += 1


class CountingCursor(psycopg.Cursor[Any]):
    def _maybe_prepare_gen(self, pgq: Any, *, prepare: bool | None = None, binary: bool | None = None) -> Any:
        _note(self._conn)
        return (yield from super()._maybe_prepare_gen(pgq, prepare=prepare, binary=binary))


class CountingAsyncCursor(psycopg.AsyncCursor[Any]):
    def _maybe_prepare_gen(self, pgq: Any, *, prepare: bool | None = None, binary: bool | None = None) -> Any:
        _note(self._conn)
        return (yield from super()._maybe_prepare_gen(pgq, prepare=prepare, binary=binary))


class CountingConnection(psycopg.Connection[Any]):
    """A psycopg connection whose statements a ``Tally`` counts; ``connect`` gives it the counting cursor."""

    def _exec_command(self, command: Any, result_format: pq.Format = pq.Format.TEXT) -> Any:
        _note(self)
        return (yield from super()._exec_command(command, result_format))

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
        return super().connect(conninfo, cursor_factory=CountingCursor, **kwargs)


class CountingAsyncConnection(psycopg.AsyncConnection[Any]):
    """``CountingConnection`` for asyncio."""

    def _exec_command(self, command: Any, result_format: pq.Format = pq.Format.TEXT) -> Any:
        _note(self)
        return (yield from super()._exec_command(command, result_format))

    @classmethod
    async def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
        return await super().connect(conninfo, cursor_factory=CountingAsyncCursor, **kwargs)


# --- the server's side ----------------------------------------------------------------------------------------


def database_url(server_url: str, name: str) -> str:
    """``server_url`` (``postgres://…``) pointed at the database ``name``."""
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


class Server:
    """A connection to the server's ``postgres`` database: creates and drops the peers' databases, reads their
    statistics. Nothing it does is counted in theirs."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.admin = psycopg.connect(database_url(server_url, "postgres"), autocommit=True)

    def close(self) -> None:
        self.admin.close()

    @contextlib.contextmanager
    def database(self, prefix: str) -> Iterator[str]:
        """A new, uniquely named, empty database (``<prefix>_<random>``), dropped on the way out even when the
        block fails and something is still connected to it."""
        name = f"{prefix}_{unique_suffix()}"
        self.admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _read(self, name: str) -> tuple[int, int]:
        self.admin.execute("SELECT pg_stat_clear_snapshot()")
        row = self.admin.execute(
            "SELECT xact_commit + xact_rollback, numbackends FROM pg_stat_database WHERE datname = %s", (name,)
        ).fetchone()
        if row is None:
            raise BenchError(f"no statistics for the database {name}")
        return int(row[0]), int(row[1])

    def transactions(self, name: str) -> int:
        """The database's transactions so far, once nothing is connected and the figure stopped moving."""
        deadline = time.monotonic() + FLUSH_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            count, backends = self._read(name)
            if backends == 0 and count == last:
                return count
            last = count if backends == 0 else None
            time.sleep(0.1)
        raise BenchError(f"the statistics of {name} did not settle within {FLUSH_TIMEOUT:.0f} s")

    def maintenance(self, name: str) -> int:
        """Autovacuum and autoanalyze runs so far on the database's tables (read from a connection of its own,
        closed again, so outside any counted pass)."""
        with psycopg.connect(database_url(self.server_url, name), autocommit=True) as observer:
            row = observer.execute(
                "SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) FROM pg_stat_all_tables"
            ).fetchone()
        return int(row[0]) if row else 0


@dataclass(frozen=True)
class Counted:
    """Per run: statements (client); transactions on the server (``None``: not counted there, or autovacuum kept
    interfering) and on the client (``None``: pipelined)."""

    statements: float
    server_transactions: float | None
    client_transactions: float | None


def _pass(runs: Callable[[int], Tally], count: int, server: Server | None, name: str) -> tuple[Tally, int | None]:
    """One pass: its tally, and its transactions on the server (``None`` when autovacuum worked meanwhile)."""
    if server is None:
        return runs(count), None
    maintained, before = server.maintenance(name), server.transactions(name)
    counted = runs(count)
    after = server.transactions(name)
    return counted, (after - before if server.maintenance(name) == maintained else None)


def per_run(runs: Callable[[int], Tally], extra: int, server: Server | None = None, name: str = "") -> Counted:
    """Count a pass of 1 run and one of ``1 + extra`` runs (``runs(count)`` does them on fresh connections and
    returns their tally) and divide the differences by ``extra``: statements and transactions on the client, and,
    with a ``server``, transactions in its statistics of the database ``name``. See the module docstring."""
    for attempt in range(1, ATTEMPTS + 1):
        one, one_server = _pass(runs, 1, server, name)
        more, more_server = _pass(runs, 1 + extra, server, name)
        if server is None or (one_server is not None and more_server is not None) or attempt == ATTEMPTS:
            break
    client = None if one.pipelined or more.pipelined else (more.transactions - one.transactions) / extra
    on_server = None if one_server is None or more_server is None else (more_server - one_server) / extra
    return Counted((more.statements - one.statements) / extra, on_server, client)
