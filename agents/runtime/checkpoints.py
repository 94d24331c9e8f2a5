"""The run's ``input`` and ``output`` guardrails: on its input before the first model call, and on its answer.

``allow`` lets it through; ``redact`` masks the personal data the policies name (a ``guardrail`` step records what
the model and the reader see instead); anything else stops the run (the input) or withholds the answer (the output),
and the run fails saying why.
"""

import json
from typing import Any

from agents.models import RunStatus, StepKind, StepStatus
from agents.runtime import facts
from agents.runtime.session import Session
from governance import detectors
from governance.guardrails import guardrail_check
from governance.policies import Decision


def _check(session: Session, checkpoint: str, text: str) -> Decision:
    return guardrail_check(
        checkpoint=checkpoint,
        facts=facts.text(session.run, text),
        policy_refs=session.ctx.policies,
        actor=session.actor,
        target=session.run,
    )


def _redacted(text: str, decision: Decision) -> str:
    kinds = [kind for kind in decision.redact if kind in detectors.KINDS]
    return detectors.redact(text, detectors.detect(text, kinds), kinds)


def input_stops(session: Session) -> bool:
    """Run the ``input`` checkpoint on the run's input; True when the run must stop (it is finished)."""
    text = json.dumps(session.run.input, ensure_ascii=False)
    decision = _check(session, "input", text)
    if decision.effect == "allow":
        return False
    detail: dict[str, Any] = {"checkpoint": "input", **decision.as_dict()}
    reasons = "; ".join(decision.reasons)
    if decision.effect == "redact":
        redacted = _redacted(text, decision)
        detail["input"] = json.loads(redacted) if _is_json(redacted) else {"text": redacted}
        session.add_step(StepKind.GUARDRAIL, StepStatus.SUCCEEDED, detail=detail)
        return False
    session.add_step(StepKind.GUARDRAIL, StepStatus.DENIED, detail=detail, error=reasons)
    session.finish(RunStatus.FAILED, error=f"The input guardrails decided {decision.effect}: {reasons}")
    return True


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def answer(session: Session, text: str) -> None:
    """The run's answer through the ``output`` checkpoint: the run succeeds with it, masked where the policies
    say, or fails with it withheld."""
    decision = _check(session, "output", text)
    detail = {"checkpoint": "output", **decision.as_dict()}
    if decision.effect in ("deny", "escalate", "require_approval"):
        session.add_step(StepKind.GUARDRAIL, StepStatus.DENIED, detail=detail, error="; ".join(decision.reasons))
        error = f"The output guardrails decided {decision.effect}: the answer is withheld."
        session.finish(RunStatus.FAILED, error=error)
        return
    if decision.effect == "redact":
        text = _redacted(text, decision)
        session.add_step(StepKind.GUARDRAIL, StepStatus.SUCCEEDED, detail=detail)
    session.add_step(StepKind.MESSAGE, StepStatus.SUCCEEDED, detail={"text": text})
    session.finish(RunStatus.SUCCEEDED, result={"answer": text})
