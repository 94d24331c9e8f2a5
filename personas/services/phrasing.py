"""A persona's model phrasing (``llm_phrasing``), done once the turn that stored the texts is committed: no
transaction is open and no row is locked while the model writes. (Asked inside the turn, a slow model would hold
a transaction, the conversation's lock and, once anything was audited, the audit chain's for as long as it takes.)

A turn stores each persona text as scripted, judged like every text (style guide, ``output`` guardrails), and flags
``phrasing.pending`` the ones neither of them replaced (``turns._persona_message``). Once the turn is committed,
``phrase`` asks the model for each of them, outside any transaction, and then judges the phrasings in a short
transaction of its own: one is swapped in when the style guide does not block it (its substitutions applied, its
warnings flagged) and the ``output`` guardrails allow it, masked when the persona redacts personal data. Any other
end (a provider error, a timeout, an empty answer, a block, a guardrail that does not allow it) keeps the scripted
text, its ``phrasing.pending`` flag turned into ``phrasing.fallback`` with the reason. Only the turn's own messages
are written, by their ids: never the conversation's state, nor a later turn's messages. A process that stops in
between leaves the scripted texts, a valid answer, still flagged ``phrasing.pending``.
"""

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from agents import providers
from audit.context import audit_context
from governance.guardrails import guardrail_check
from personas.models import Message
from personas.services.turns import (
    PHRASING_PENDING,
    _audit,
    _Context,
    _facts,
    _guardrail_flag,
    _pii_redacted,
    _styled,
)

PHRASING_SYSTEM = (
    "You rephrase the lines of a customer-facing assistant. Keep every fact, number, name and question exactly; "
    "change only the wording. Answer with the rephrased line alone."
)

Flags = list[dict[str, Any]]


@dataclass(frozen=True)
class _Phrasing:
    """What the model answered: its phrasing, or why there is none."""

    text: str = ""
    reason: str = ""


def phrase(ctx: _Context, messages: list[Message]) -> None:
    """Phrase the ``phrasing.pending`` messages of a committed turn and swap in each phrasing that passes, with the
    ``persona.conversation.phrased`` event; ``messages`` are updated in place, as stored. Called after the turn's
    transaction, never inside it."""
    pending = [message for message in messages if _is_pending(message.flags)]
    if not pending:
        return
    phrasings = [_ask(ctx.spec, message.text) for message in pending]
    with audit_context(actor=ctx.actor, correlation_id=ctx.conversation.correlation_id), transaction.atomic():
        for message, phrasing in zip(pending, phrasings, strict=True):
            message.text, message.flags = _judged(ctx, message, phrasing)
            message.save(update_fields=["text", "flags"])
        _audit(
            actor=ctx.actor,
            action="persona.conversation.phrased",
            target=ctx.conversation,
            details={
                "model": _model_label(ctx.spec),
                "phrased": [message.seq for message in pending if not _fell_back(message.flags)],
                "fallback": [message.seq for message in pending if _fell_back(message.flags)],
            },
        )


def _is_pending(flags: Flags) -> bool:
    return any(flag["kind"] == PHRASING_PENDING for flag in flags)


def _fell_back(flags: Flags) -> bool:
    return any(flag["kind"] == "phrasing.fallback" for flag in flags)


def _model_label(spec: dict[str, Any]) -> str:
    return f"{spec['llm_phrasing']['provider']} {spec['llm_phrasing']['model']}"


def _ask(spec: dict[str, Any], text: str) -> _Phrasing:
    """The model's phrasing of ``text``, or why there is none (any provider error or timeout, an empty answer)."""
    phrasing = spec["llm_phrasing"]
    model = {
        "provider": phrasing["provider"],
        "name": phrasing["model"],
        "base_url": phrasing.get("base_url"),
        "api_key_env": phrasing.get("api_key_env") or f"{phrasing['provider'].upper()}_API_KEY",
        "parameters": phrasing.get("parameters") or {},
    }
    system = " ".join(filter(None, [PHRASING_SYSTEM, spec.get("tone"), phrasing.get("instructions")]))
    messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    try:
        completion = providers.get_provider(model["provider"]).complete(
            model=model, messages=messages, tools=[], timeout=float(phrasing.get("timeout_seconds", 5)), script=[]
        )
    except providers.ProviderError as error:
        return _Phrasing(reason=str(error)[:500])
    phrased = completion.text.strip()
    return _Phrasing(text=phrased) if phrased else _Phrasing(reason="the model answered nothing")


def _judged(ctx: _Context, message: Message, phrasing: _Phrasing) -> tuple[str, Flags]:
    """What the message says once judged, and its flags: the phrasing, with its own flags, when it passes; else the
    scripted text as stored, with ``phrasing.fallback`` in place of the pending flag."""
    text, flags = _verdict(ctx, phrasing)
    if text is None:
        return message.text, [flags[0] if flag["kind"] == PHRASING_PENDING else flag for flag in message.flags]
    return text, flags


def _verdict(ctx: _Context, phrasing: _Phrasing) -> tuple[str | None, Flags]:
    """The phrasing as it would be stored, with its flags; or None and the ``phrasing.fallback`` flag saying why not.
    The ``output`` guardrails are asked inside the caller's transaction: what they decide is recorded with it."""
    if not phrasing.text:
        return None, [{"kind": "phrasing.fallback", "reason": phrasing.reason}]
    styled, style_flags = _styled(ctx, phrasing.text)
    if styled is None:
        blocked = style_flags[0]["violations"]
        return None, [{"kind": "phrasing.fallback", "reason": "the style guide blocks it", "violations": blocked}]
    decision = guardrail_check(
        checkpoint="output",
        facts=_facts(ctx, styled),
        policy_refs=ctx.policies,
        actor=ctx.actor,
        target=ctx.conversation,
    )
    if decision.effect != "allow":
        refused = {**_guardrail_flag(decision), "kind": "phrasing.fallback"}
        return None, [{**refused, "reason": f"the output guardrails decided {decision.effect}"}]
    text, redacted = _pii_redacted(ctx.spec, styled)
    return text, [{"kind": "phrasing.model", "model": _model_label(ctx.spec)}, *style_flags, *redacted]
