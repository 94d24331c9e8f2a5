"""The floor: the loop with one committed insert per step, on one plain psycopg connection.

Each step (the scripted model's call, the no-op tool's) is followed by one ``INSERT`` of its message into
``step (run, number, message jsonb)``, in autocommit mode: one statement and one transaction a step, 11 a run,
nothing read back. No durable-execution stack can write less and still have every step on disk before the next.
"""

import json
import time
from typing import Any

from bench import tools as bench_tools
from bench.peers.counting import CountingConnection

INSERT = "INSERT INTO step (run, number, message) VALUES (%s, %s, %s)"


class PsycopgPeer:
    name = "psycopg"
    about = "plain psycopg, one committed INSERT per step (autocommit), the floor"
    own_thread_only = False

    def __init__(self) -> None:
        self.connection: Any = None
        self.calls = 0

    def open(self, url: str, calls: int) -> None:
        self.calls = calls
        self.connection = CountingConnection.connect(url, autocommit=True)
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS step (run integer, number integer, message jsonb, PRIMARY KEY (run, number))"
        )

    def close(self) -> None:
        self.connection.close()

    def run(self, number: int, entries: list[dict[str, Any]]) -> None:
        messages = bench_tools.first_messages({"n": number})
        step = 0
        while True:
            message, calls = bench_tools.model_turn(messages, entries)
            messages.append(message)
            step += 1
            self.connection.execute(INSERT, (number, step, json.dumps(message)))
            if not calls:
                bench_tools.check_answer(message, self.calls)
                return
            for call in calls:
                result = bench_tools.tool_turn(call)
                messages.append(result)
                step += 1
                self.connection.execute(INSERT, (number, step, json.dumps(result)))

    def runs(self, first: int, count: int) -> list[float]:
        entries = bench_tools.script(self.calls)
        seconds = []
        for number in range(first, first + count):
            started = time.perf_counter()
            self.run(number, entries)
            seconds.append(time.perf_counter() - started)
        return seconds
