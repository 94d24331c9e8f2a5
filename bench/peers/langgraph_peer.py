"""LangGraph: the loop as a ``StateGraph`` checkpointed in PostgreSQL by ``langgraph-checkpoint-postgres``.

The graph: a ``model`` node (one call of the scripted model: its message and tool calls), a ``tool`` node (the
no-op tool for each call), and a conditional edge from ``model`` to ``tool`` while the model calls tools, else to
the end; ``tool`` goes back to ``model``. The state is the conversation (``messages``, appended to) and the
pending ``calls``. Each run is a thread of its own (a new ``thread_id``), so every run starts from nothing.

- ``langgraph-sync``: ``PostgresSaver`` on one psycopg connection (autocommit, ``prepare_threshold=0``, dict rows,
  as ``PostgresSaver.from_conn_string`` opens it), ``graph.invoke(..., durability="sync")``: each step's
  checkpoint is written before the next step starts, the guarantee Steward gives.
- ``langgraph-async``: ``AsyncPostgresSaver`` on one async connection, the nodes as coroutines (the same work),
  ``graph.ainvoke(...)`` with LangGraph's default ``durability="async"``: a step's checkpoint is written while the
  next step runs (the run still waits for all of them before it returns; a crash can lose the last step). A weaker
  guarantee, hence the lower target.
- ``langgraph-async-thread``: the other reading of "LangGraph async": the synchronous API (``PostgresSaver``,
  ``graph.invoke``) with ``durability="async"``, the checkpoints written from a background thread of LangGraph's.

Statements are counted on the connection (``bench.peers.counting``); the saver sends its writes in pipelines, so
transactions are counted on the server only.
"""

import asyncio
import operator
import time
import uuid
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from psycopg.rows import dict_row

from bench import tools as bench_tools
from bench.peers.counting import CountingAsyncConnection, CountingConnection

CONNECTION_OPTIONS: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}


class LoopState(TypedDict):
    messages: Annotated[list[dict[str, Any]], operator.add]
    calls: list[dict[str, Any]]


def loop_graph(calls: int, asynchronous: bool = False) -> StateGraph:
    """The loop's graph for a script of ``calls`` tool calls (not compiled); ``asynchronous``: its nodes are
    coroutines, so that LangGraph runs them on the event loop rather than in a thread of its executor."""
    entries = bench_tools.script(calls)

    def model(state: LoopState) -> dict[str, Any]:
        message, tool_calls = bench_tools.model_turn(state["messages"], entries)
        return {"messages": [message], "calls": tool_calls}

    def tool(state: LoopState) -> dict[str, Any]:
        return {"messages": [bench_tools.tool_turn(call) for call in state["calls"]], "calls": []}

    def route(state: LoopState) -> str:
        return "tool" if state["calls"] else END

    async def model_async(state: LoopState) -> dict[str, Any]:
        return model(state)

    async def tool_async(state: LoopState) -> dict[str, Any]:
        return tool(state)

    graph = StateGraph(LoopState)
    graph.add_node("model", model_async if asynchronous else model)
    graph.add_node("tool", tool_async if asynchronous else tool)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route, ["tool", END])
    graph.add_edge("tool", "model")
    return graph


def first_state(number: int) -> tuple[dict[str, Any], Any]:
    """A run's input and its config (a new thread)."""
    state = {"messages": bench_tools.first_messages({"n": number}), "calls": []}
    return state, {"configurable": {"thread_id": f"run-{number}-{uuid.uuid4().hex[:8]}"}}


class LangGraphSyncPeer:
    name = "langgraph-sync"
    about = 'LangGraph StateGraph, PostgresSaver, durability="sync"'
    own_thread_only = False
    durability = "sync"

    def __init__(self) -> None:
        self.connection: Any = None
        self.graph: Any = None
        self.calls = 0

    def open(self, url: str, calls: int) -> None:
        self.calls = calls
        self.connection = CountingConnection.connect(url, **CONNECTION_OPTIONS)
        saver = PostgresSaver(self.connection)
        saver.setup()
        self.graph = loop_graph(calls).compile(checkpointer=saver)

    def close(self) -> None:
        self.connection.close()

    def runs(self, first: int, count: int) -> list[float]:
        seconds = []
        for number in range(first, first + count):
            state, config = first_state(number)
            started = time.perf_counter()
            final = self.graph.invoke(state, config, durability=self.durability)
            seconds.append(time.perf_counter() - started)
            bench_tools.check_answer(final["messages"][-1], self.calls)
        return seconds


class LangGraphThreadPeer(LangGraphSyncPeer):
    name = "langgraph-async-thread"
    about = 'LangGraph StateGraph, PostgresSaver, durability="async" (checkpoints written from a thread)'
    durability = "async"


class LangGraphAsyncPeer:
    name = "langgraph-async"
    about = 'LangGraph StateGraph on asyncio, AsyncPostgresSaver, durability="async" (its default)'
    own_thread_only = False

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.connection: Any = None
        self.graph: Any = None
        self.calls = 0

    def open(self, url: str, calls: int) -> None:
        self.calls = calls
        self.loop.run_until_complete(self._open(url))

    async def _open(self, url: str) -> None:
        self.connection = await CountingAsyncConnection.connect(url, **CONNECTION_OPTIONS)
        saver = AsyncPostgresSaver(self.connection)
        await saver.setup()
        self.graph = loop_graph(self.calls, asynchronous=True).compile(checkpointer=saver)

    def close(self) -> None:
        self.loop.run_until_complete(self.connection.close())

    def runs(self, first: int, count: int) -> list[float]:
        return self.loop.run_until_complete(self._runs(first, count))

    async def _runs(self, first: int, count: int) -> list[float]:
        seconds = []
        for number in range(first, first + count):
            state, config = first_state(number)
            started = time.perf_counter()
            final = await self.graph.ainvoke(state, config, durability="async")
            seconds.append(time.perf_counter() - started)
            bench_tools.check_answer(final["messages"][-1], self.calls)
        return seconds
