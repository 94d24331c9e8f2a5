"""DBOS: the loop as a DBOS workflow whose steps are the model call and the tool call, on its own system database.

``loop_workflow`` calls ``model_step`` (the scripted model: its message and tool calls) and ``tool_step`` (the no-op
tool) as the script says; DBOS records the workflow's start, every step's output and the workflow's end in its
system database (``DBOSConfig.system_database_url``: the peer's throw-away database) before going on. A run is one
workflow started by calling it, which runs it in the calling thread, as DBOS does for a direct call.

DBOS is launched by ``open`` and destroyed by ``close`` (so its background threads, which poll the system database,
do not run during the other contenders' batches). Its engine is DBOS's own (its defaults: a pool, pre-ping on
checkout), with only the connections made by ``CountingConnection``, so that statements are counted. Those
background threads write to the same database, so the server's figure is not the runs' alone: transactions are
counted on the client, in the thread that runs the workflow (``bench.peers.counting``).
"""

import logging
import time
from typing import Any

from dbos import DBOS, DBOSConfig

from bench import tools as bench_tools
from bench.peers.counting import CountingConnection


@DBOS.step()
def model_step(messages: list[dict[str, Any]], entries: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Any]]:
    return bench_tools.model_turn(messages, entries)


@DBOS.step()
def tool_step(call: dict[str, Any]) -> dict[str, Any]:
    return bench_tools.tool_turn(call)


@DBOS.workflow()
def loop_workflow(number: int, calls: int) -> dict[str, Any]:
    messages, entries = bench_tools.first_messages({"n": number}), bench_tools.script(calls)
    while True:
        message, tool_calls = model_step(messages, entries)
        messages.append(message)
        if not tool_calls:
            return message
        for call in tool_calls:
            messages.append(tool_step(call))


class DbosPeer:
    name = "dbos"
    about = "DBOS workflow, the model call and the tool call as steps, PostgreSQL system database"
    own_thread_only = True

    def __init__(self) -> None:
        self.calls = 0

    def open(self, url: str, calls: int) -> None:
        self.calls = calls
        conninfo = url.replace("postgresql+psycopg://", "postgresql://")
        config: DBOSConfig = {
            "name": "bench-runs",
            "system_database_url": url,
            "db_engine_kwargs": {
                "creator": lambda: CountingConnection.connect(conninfo, application_name="dbos_transact")
            },
            "log_level": "WARNING",
        }
        DBOS(config=config)
        DBOS.launch()
        logging.getLogger("dbos").setLevel(logging.WARNING)

    def close(self) -> None:
        DBOS.destroy()

    def runs(self, first: int, count: int) -> list[float]:
        seconds = []
        for number in range(first, first + count):
            started = time.perf_counter()
            answer = loop_workflow(number, self.calls)
            seconds.append(time.perf_counter() - started)
            bench_tools.check_answer(answer, self.calls)
        return seconds
