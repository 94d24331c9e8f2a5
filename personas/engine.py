"""The dialogue engine: one user message and the conversation's state in, the persona's replies and new state out.

It is a pure function of the persona spec, the state and the text: no clock, no randomness, no database. The same
persona version and the same messages give the same replies, every time. What the replies do to the world (a
hand-over to a person, a hand-off to an agent, closing the conversation) comes back as an ``Outcome`` for
``personas.services`` to carry out, together with style-guide and guardrail enforcement on every outgoing text.

A turn, in order:

1. Built-in intents, in every persona and at any point: asking for a person hands over; "cancel" stops the current
   flow; "start over" forgets the slots and greets again.
2. Inside a flow waiting on an ``ask`` step, the text is the answer: a valid one fills the slot and the flow goes
   on; an invalid one is answered with the re-prompt, until ``max_attempts`` hands over to a person.
3. Otherwise the text may start a flow (``flows.match_flow``); text that starts none gets the fallback message, and
   ``max_fallbacks`` of those in a row hand over to a person. The message that starts a flow may already hold the
   answer to the flow's first questions ("restock SKU-123"): until the flow asks its first question, an ``ask``
   step whose value ``flows.slot_value_in`` finds in that message is filled from it and not asked.

Steps run until the flow waits for an answer, ends, or leaves the persona's hands (escalate, hand-off).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from governance.policies import ConditionError, ConditionRuntimeError, compile_condition
from personas import flows

# A flow that jumps back (next, goto, default) this many times in one turn without asking anything is a loop: it is
# stopped and handed to a person. Flows without jumps back cannot loop and run to their end.
MAX_JUMPS_BACK = 100

_PERSON = re.compile(
    r"\b(?:(?:talk|speak|chat)\s+(?:to|with)\s+(?:a\s+|an\s+|some\s*one|somebody|a\s+real\s+)?"
    r"(?:human|person|someone|somebody|agent|operator|representative|people)"
    r"|real\s+(?:person|human)|human\s+(?:being|please|agent)|live\s+agent|customer\s+service\s+representative"
    r"|(?:want|need|get\s+me)\s+(?:a|an)\s+(?:human|person|operator|representative))\b",
    re.IGNORECASE,
)
_CANCEL = frozenset({"cancel", "stop", "never mind", "nevermind", "forget it", "quit", "cancel that", "abort"})
_RESTART = frozenset({"start over", "restart", "reset", "begin again", "start again", "from the beginning"})


def builtin_intent(text: str) -> str | None:
    """``person``, ``cancel`` or ``restart`` when the text asks for one of them, else None.

    Asking for a person is recognised anywhere in the text; cancel and start over only as the whole message, so
    that "I want to stop my subscription" still reaches the flows.
    """
    if _PERSON.search(text):
        return "person"
    whole = " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())
    if whole in _CANCEL:
        return "cancel"
    if whole in _RESTART:
        return "restart"
    return None


@dataclass(frozen=True)
class Reply:
    text: str
    kind: str  # greeting, say, prompt, reprompt, fallback, handover, intent, end
    flow: str = ""
    step: str = ""


@dataclass(frozen=True)
class Outcome:
    """What the turn asks of the world besides its replies. At most one of these is set."""

    escalate: str = ""  # a reason: hand the conversation to a person
    handoff: Mapping[str, Any] | None = None  # {"agent", "label", "input"}: hand the work to an agent
    close: bool = False  # the flow ended with close


@dataclass
class Turn:
    replies: list[Reply] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    outcome: Outcome = field(default_factory=Outcome)
    intent: str = ""  # the built-in intent recognised, if any
    matched_flow: str = ""  # the flow this message started, if any


def initial_state() -> dict[str, Any]:
    return {"flow": None, "step": None, "slots": {}, "attempts": 0, "fallbacks": 0}


def message(spec: Mapping[str, Any], name: str) -> str:
    return str((spec.get("messages") or {}).get(name) or flows.DEFAULT_MESSAGES[name])


class _Runner:
    def __init__(self, spec: Mapping[str, Any], state: Mapping[str, Any], persona_name: str) -> None:
        self.spec = spec
        self.state: dict[str, Any] = {**initial_state(), **state, "slots": dict(state.get("slots") or {})}
        self.persona_name = persona_name
        self.turn = Turn()
        # The message that started the flow this turn, while the flow has asked nothing yet: its leading questions
        # are answered from it when it holds their values.
        self.first_message = ""

    def slots(self) -> dict[str, Any]:
        return {"persona_name": self.persona_name, **self.state["slots"]}

    def say(self, template: str, kind: str, flow: str = "", step: str = "") -> None:
        self.turn.replies.append(Reply(flows.render(template, self.slots()), kind, flow, step))

    def leave_flow(self) -> None:
        self.state.update(flow=None, step=None, attempts=0)

    def hand_over(self, reason: str, text: str | None = None, flow: str = "", step: str = "") -> None:
        self.say(text or self.spec["handover"], "handover", flow, step)
        self.leave_flow()
        self.turn.outcome = Outcome(escalate=reason)

    def flow(self, flow_id: str) -> Mapping[str, Any]:
        return next(flow for flow in self.spec["flows"] if flow["id"] == flow_id)

    def run(self, flow: Mapping[str, Any], index: int) -> None:
        """Run ``flow`` from step ``index`` until it waits for an answer, ends or leaves the persona."""
        steps = flow["steps"]
        positions = {step["id"]: position for position, step in enumerate(steps)}
        self.state["flow"] = flow["id"]
        jumps_back = 0
        while jumps_back <= MAX_JUMPS_BACK:
            if index >= len(steps):
                self.leave_flow()
                return
            step = steps[index]
            kind, flow_id, step_id = step["type"], flow["id"], step["id"]
            following = index + 1
            if kind == "say":
                self.say(step["text"], "say", flow_id, step_id)
            elif kind == "ask":
                if not self.fill_from_first_message(step):
                    self.state.update(step=step_id, attempts=0)
                    self.say(step["prompt"], "prompt", flow_id, step_id)
                    return
            elif kind == "set":
                value = step["value"]
                self.state["slots"][step["slot"]] = (
                    flows.render(value, self.slots()) if isinstance(value, str) else value
                )
            elif kind == "branch":
                target = self.branch(step, flow_id)
                if target is None:
                    return
                following = positions[target] if target else following
            elif kind == "escalate":
                self.hand_over(flows.render(step["reason"], self.slots()), step.get("text"), flow_id, step_id)
                return
            elif kind == "handoff":
                inputs = {
                    name: flows.value(template, self.slots()) for name, template in (step.get("input") or {}).items()
                }
                if step.get("text"):
                    self.say(step["text"], "say", flow_id, step_id)
                self.leave_flow()
                self.turn.outcome = Outcome(
                    handoff={
                        "agent": step["agent"],
                        "label": step.get("label", "production"),
                        "input": inputs,
                        "reply": step.get("reply", "{{result.answer}}"),
                        "flow": flow_id,
                        "step": step_id,
                    }
                )
                return
            elif kind == "end":
                if step.get("text"):
                    self.say(step["text"], "end", flow_id, step_id)
                self.leave_flow()
                if step.get("close"):
                    self.turn.outcome = Outcome(close=True)
                return
            following = positions[step["next"]] if step.get("next") else following
            jumps_back += following <= index
            index = following
        self.hand_over(f"Flow {flow['id']!r} jumped back {MAX_JUMPS_BACK} times without waiting for the user: a loop?")

    def fill_from_first_message(self, step: Mapping[str, Any]) -> bool:
        """Fill an ``ask`` step's slot from the message that started the flow, when it holds the value; once a
        question has to be asked, later ones are never filled from that message."""
        found = flows.slot_value_in(step, self.first_message) if self.first_message else None
        if found is None:
            self.first_message = ""
            return False
        self.state["slots"][step["slot"]] = found
        return True

    def branch(self, step: Mapping[str, Any], flow_id: str) -> str | None:
        """The step to go to ("" for the following one); None when a condition failed and the turn was handed over."""
        facts = {"slots": self.state["slots"]}
        for case in step["cases"]:
            try:
                if compile_condition(case["when"]).evaluate(facts):
                    return str(case["goto"])
            except (ConditionError, ConditionRuntimeError) as error:
                self.hand_over(
                    f"Flow {flow_id!r}, step {step['id']!r}: the condition {case['when']!r} failed ({error}); "
                    "handed to a person (fail-safe).",
                    flow=flow_id,
                    step=step["id"],
                )
                return None
        return str(step.get("default") or "")

    def answer(self, text: str) -> None:
        flow = self.flow(self.state["flow"])
        steps = flow["steps"]
        index = next(i for i, step in enumerate(steps) if step["id"] == self.state["step"])
        step = steps[index]
        answer = flows.parse_answer(step, text)
        if answer.ok:
            self.state["slots"][step["slot"]] = answer.value
            self.state.update(step=None, attempts=0)
            following = (
                next(i for i, s in enumerate(steps) if s["id"] == step["next"]) if step.get("next") else index + 1
            )
            self.run(flow, following)
            return
        self.state["attempts"] += 1
        limit = step.get("max_attempts", flows.DEFAULT_MAX_ATTEMPTS)
        if self.state["attempts"] >= limit:
            self.hand_over(
                f"No valid answer for {step['slot']!r} after {limit} attempts "
                f"(flow {flow['id']!r}, step {step['id']!r}).",
                flow=flow["id"],
                step=step["id"],
            )
            return
        reprompt = flows.render(step.get("reprompt") or step["prompt"], self.slots())
        self.turn.replies.append(Reply(f"{answer.problem} {reprompt}", "reprompt", flow["id"], step["id"]))

    def receive(self, text: str) -> Turn:
        intent = builtin_intent(text)
        self.turn.intent = intent or ""
        if intent == "person":
            self.hand_over("The user asked for a person.")
        elif intent == "cancel":
            self.leave_flow()
            self.state["fallbacks"] = 0
            self.say(message(self.spec, "cancelled"), "intent")
        elif intent == "restart":
            self.state = initial_state()
            self.say(message(self.spec, "restarted"), "intent")
            self.say(self.spec["greeting"], "greeting")
        elif self.state["flow"] and self.state["step"]:
            self.answer(text)
        else:
            flow = flows.match_flow(self.spec["flows"], text)
            if flow is None:
                self.state["fallbacks"] += 1
                limit = self.spec.get("max_fallbacks", flows.DEFAULT_MAX_FALLBACKS)
                if self.state["fallbacks"] >= limit:
                    self.state["fallbacks"] = 0
                    self.hand_over(f"{limit} messages in a row matched no flow.")
                else:
                    self.say(self.spec["fallback"], "fallback")
            else:
                self.state["fallbacks"] = 0
                self.turn.matched_flow = flow["id"]
                self.first_message = text
                self.run(flow, 0)
        self.turn.state = self.state
        return self.turn


def greet(spec: Mapping[str, Any], persona_name: str) -> Turn:
    """The first turn of a conversation: the greeting and a fresh state."""
    runner = _Runner(spec, initial_state(), persona_name)
    runner.say(spec["greeting"], "greeting")
    runner.turn.state = runner.state
    return runner.turn


def receive(spec: Mapping[str, Any], state: Mapping[str, Any], text: str, persona_name: str) -> Turn:
    """One user message: the persona's replies, the new state, and what the turn asks of the world."""
    return _Runner(spec, state, persona_name).receive(text)
