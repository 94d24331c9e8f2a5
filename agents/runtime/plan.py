"""What the loop does next: a ``Plan``, decided in memory from the session (``agents.runtime.loop``)."""

from dataclasses import dataclass, field
from typing import Any

from agents.models import Step


@dataclass(frozen=True)
class Plan:
    kind: str  # "stop" | "next" | "llm" | "tool" | "hand_back" (a warm shutdown: the next worker goes on)
    messages: tuple[dict[str, Any], ...] = ()  # "llm": the conversation so far
    tools: tuple[dict[str, Any], ...] = ()  # "llm": the tools the model is offered
    step: Step | None = field(default=None, compare=False)  # "tool": the step to perform, its tool loaded
    # "tool": called before anything of the step is committed (a read: calling it again is harmless), its outcome
    # then committed with the model's reply that asked for it.
    deferred: bool = False


STOP = Plan("stop")
NEXT = Plan("next")
HAND_BACK = Plan("hand_back")
