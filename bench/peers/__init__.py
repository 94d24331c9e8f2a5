"""The run benchmark's peers: other durable-execution stacks running the same loop as Steward's benchmark agent.

The loop is ``bench.tools``'s: the scripted model (``ScriptedProvider`` with ``bench.tools.script``), then the no-op
tool, five times, then the answer: 11 steps, each durably recorded in PostgreSQL before the next begins (or, for
``langgraph-async``, while it begins: see there). Each peer has a module of its own:

- ``psycopg_peer``: the floor, one committed insert per step and nothing else;
- ``langgraph_peer``: a LangGraph ``StateGraph`` checkpointed by ``PostgresSaver`` (``durability="sync"``), the
  same graph on asyncio with ``AsyncPostgresSaver`` (``durability="async"``), and the synchronous one with
  ``durability="async"``;
- ``dbos_peer``: a DBOS workflow whose steps are the model call and the tool call.

Like Steward's solo worker, a peer does one run after another in one thread, on one connection (DBOS: its pool),
against its own throw-away database, which the benchmark creates with a unique name and drops afterwards. Every
run is checked: it must end with the script's answer. How their statements and transactions are counted:
``bench.peers.counting``.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bench.peers.counting import Tally, tally


@dataclass(frozen=True)
class Batch:
    """Runs done one after another: the seconds from the first's start to the last's end, and each run's."""

    seconds: float
    run_seconds: list[float]


class Peer(Protocol):
    """A peer on its database: ``open`` connects (and creates its tables the first time), ``runs`` does runs
    ``first``, ``first + 1``, … one after another and returns each one's seconds, ``close`` disconnects.
    ``own_thread_only``: count only the statements of the thread doing the runs (the peer's background threads
    share its connections)."""

    name: str
    about: str
    own_thread_only: bool

    def open(self, url: str, calls: int) -> None: ...

    def runs(self, first: int, count: int) -> list[float]: ...

    def close(self) -> None: ...


def timed(peer: Peer, first: int, count: int) -> Batch:
    """``count`` runs of an open peer, timed as one batch."""
    started = time.perf_counter()
    run_seconds = peer.runs(first, count)
    return Batch(seconds=time.perf_counter() - started, run_seconds=run_seconds)


class Numbers:
    """Consecutive run inputs for the counting passes, never used twice."""

    def __init__(self, start: int) -> None:
        self.next = start

    def __call__(self, count: int) -> range:
        numbers = range(self.next, self.next + count)
        self.next += count
        return numbers


def peer_batch(kind: type[Peer], url: str, calls: int, warmup: int) -> Callable[[int, int], Batch]:
    """A peer's batch: connect, warm up (untimed), the timed runs, disconnect."""

    def batch(first: int, count: int) -> Batch:
        peer = kind()
        peer.open(url, calls)
        try:
            if warmup:
                peer.runs(first + count, warmup)
            return timed(peer, first, count)
        finally:
            peer.close()

    return batch


def peer_counting(kind: type[Peer], url: str, calls: int, numbers: Numbers) -> Callable[[int], Tally]:
    """A counting pass of a peer, on fresh connections; only this thread's statements for a peer whose own
    background threads share its connections (DBOS)."""

    def runs(count: int) -> Tally:
        peer = kind()
        peer.open(url, calls)
        try:
            with tally(threading.get_ident() if peer.own_thread_only else None) as counted:
                peer.runs(numbers(count).start, count)
        finally:
            peer.close()
        return counted

    return runs


def peers() -> dict[str, type[Peer]]:
    """The peers by name (their libraries imported only here: they are benchmark-only dependencies)."""
    from bench.peers.dbos_peer import DbosPeer
    from bench.peers.langgraph_peer import LangGraphAsyncPeer, LangGraphSyncPeer, LangGraphThreadPeer
    from bench.peers.psycopg_peer import PsycopgPeer

    known = (LangGraphSyncPeer, LangGraphAsyncPeer, LangGraphThreadPeer, DbosPeer, PsycopgPeer)
    return {peer.name: peer for peer in known}
