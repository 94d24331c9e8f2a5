"""The building blocks of a conversation turn: the turn's context (spec, style guide, pinned policies, actor), the
persona's outgoing texts (style guide, ``output`` guardrails, marked for the model's phrasing), storing messages
(redacted when the persona says so), handing a conversation to a person, closing, locking and saving. Used by the
conversation services, the agent-answer receiver and the operator services of ``personas.services``.
"""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from audit.context import Actor
from audit.services import audit_record
from config.errors import NotFound
from governance import detectors, policies, selectors
from governance.guardrails import guardrail_check
from governance.models import ReviewKind, Risk
from governance.services import review_item_open
from personas import engine, flows, styleguide
from personas.models import Conversation, ConversationStatus, Message, Role
from personas.services.approval import STYLE_GUIDE_KIND


@dataclass
class _Outgoing:
    """A message about to be stored, with its flags."""

    text: str
    role: str
    flags: list[dict[str, Any]] = field(default_factory=list)
    flow: str = ""
    step: str = ""
    author: User | None = None


@dataclass
class _Context:
    conversation: Conversation
    spec: dict[str, Any]
    guide: dict[str, Any] | None
    policies: list[policies.PolicyRef]
    actor: Actor
    escalate: str = ""  # a guardrail asked for a person


def _context(conversation: Conversation, actor: Actor) -> _Context:
    spec = conversation.version.spec
    reference = spec.get("style_guide")
    guide = selectors.frozen_spec(STYLE_GUIDE_KIND, reference["slug"], reference["version"]) if reference else None
    refs = [
        policies.PolicyRef(slug=slug, version=number, spec=policy)
        for slug, number, policy in selectors.frozen_versions([p["id"] for p in conversation.policy_versions])
    ]
    return _Context(conversation, spec, guide, refs, actor)


def _audit(*, target: Conversation, **event: Any) -> None:
    """Every event of a conversation, and of the agent runs it starts, carries the conversation's correlation id."""
    audit_record(target=target, correlation_id=target.correlation_id, **event)


def _facts(ctx: _Context, text: str) -> dict[str, Any]:
    return {"text": text, "channel": "conversation", "persona": ctx.conversation.persona.slug, "agent": ""}


def _redacted(decision: policies.Decision, text: str) -> str:
    kinds = [kind for kind in decision.redact if kind in detectors.KINDS]
    return detectors.redact(text, detectors.detect(text, kinds), kinds) if kinds else text


def _guardrail_flag(decision: policies.Decision) -> dict[str, Any]:
    return {
        "kind": f"guardrail.{decision.effect}",
        "policies": [f"{match.policy} v{match.version}" for match in decision.matched],
        "reasons": list(decision.reasons),
    }


PHRASING_PENDING = "phrasing.pending"


def _phrases(spec: Mapping[str, Any]) -> bool:
    """Whether the persona has a model phrase its texts (``llm_phrasing``)."""
    return bool((spec.get("llm_phrasing") or {}).get("enabled"))


def _styled(ctx: _Context, text: str) -> tuple[str | None, list[dict[str, Any]]]:
    """The style guide's verdict on an outgoing text: None (and the ``style.block`` flag) when it blocks the text,
    else the text with its substitutions applied and the ``style.rewrite`` and ``style.warn`` flags."""
    if ctx.guide is None:
        return text, []
    violations = styleguide.lint(text, ctx.guide)
    blocking = [v for v in violations if v.severity == "block"]
    if blocking:
        return None, [{"kind": "style.block", "violations": [v.message for v in blocking]}]
    flags = []
    rewrites = [v for v in violations if v.severity == "rewrite"]
    if rewrites:
        flags.append({"kind": "style.rewrite", "violations": [v.message for v in rewrites]})
        text = styleguide.rewrite(text, rewrites)
    warnings = [v for v in violations if v.severity == "warn"]
    if warnings:
        flags.append({"kind": "style.warn", "violations": [v.message for v in warnings]})
    return text, flags


def _persona_message(ctx: _Context, reply: engine.Reply) -> _Outgoing:
    """An outgoing text as scripted, through the style guide and the ``output`` guardrails. When the persona has a
    model phrase its texts and neither replaced this one, it is flagged ``phrasing.pending``: the model is asked
    once the turn is committed (``personas.services.phrasing``), never while the turn holds its locks."""
    styled, flags = _styled(ctx, reply.text)
    fallback = _reply(ctx, ctx.spec["fallback"], "fallback").text
    out = _Outgoing(fallback if styled is None else styled, Role.PERSONA, flags, reply.flow, reply.step)
    decision = guardrail_check(
        checkpoint="output",
        facts=_facts(ctx, out.text),
        policy_refs=ctx.policies,
        actor=ctx.actor,
        target=ctx.conversation,
    )
    if decision.effect != "allow":
        out.flags.append(_guardrail_flag(decision))
    if decision.effect == "deny":
        out.text = fallback
    elif decision.effect == "redact":
        out.text = _redacted(decision, out.text)
    elif decision.effect in {"escalate", "require_approval"}:
        out.text = _reply(ctx, ctx.spec["handover"], "handover").text
        ctx.escalate = ctx.escalate or _decision_reason(decision)
    elif styled is not None and _phrases(ctx.spec):
        out.flags.insert(0, {"kind": PHRASING_PENDING})
    return out


def _reply(ctx: _Context, template: str, kind: str) -> engine.Reply:
    """A persona text that comes from the spec rather than a flow step: only ``{{persona_name}}`` is filled in."""
    return engine.Reply(flows.render(template, {"persona_name": ctx.conversation.version.name}), kind)


def _decision_reason(decision: policies.Decision) -> str:
    return "; ".join(decision.reasons) or f"a guardrail policy decided {decision.effect}"


def _store(ctx: _Context, outgoing: list[_Outgoing]) -> list[Message]:
    """Store messages after the conversation's last, redacting personal data when the persona says so."""
    conversation = ctx.conversation
    last = conversation.last_seq
    messages = []
    for offset, out in enumerate(outgoing, start=1):
        text, redacted = _pii_redacted(ctx.spec, out.text)
        flags = [*out.flags, *redacted]
        messages.append(
            Message(
                conversation=conversation,
                seq=last + offset,
                role=out.role,
                text=text,
                flags=flags,
                flow=out.flow,
                step=out.step,
                author=out.author,
            )
        )
    conversation.last_seq = last + len(messages)  # saved by _save, which every caller of _store ends with
    return Message.objects.bulk_create(messages)


def _pii_redacted(spec: Mapping[str, Any], text: str) -> tuple[str, list[dict[str, Any]]]:
    """The text as stored: with personal data masked (and the ``pii.redacted`` flag) when the persona redacts."""
    if spec.get("pii", "keep") != "redact":
        return text, []
    found = detectors.detect(text, detectors.PII_KINDS)
    if not found:
        return text, []
    return detectors.redact(text, found), [{"kind": "pii.redacted", "found": sorted({d.kind for d in found})}]


def _escalate(ctx: _Context, reason: str) -> None:
    """Hand the conversation to a person. Reasons can quote what the user typed (a flow's ``reason`` template): the
    audit trail never keeps personal data from them, and neither does anything else when the persona redacts."""
    conversation = ctx.conversation
    redacted = detectors.redact(reason, detectors.detect(reason, detectors.PII_KINDS))
    if ctx.spec.get("pii") == "redact":
        reason = redacted
    conversation.status = ConversationStatus.ESCALATED
    conversation.escalation_reason = reason
    review_item_open(
        kind=ReviewKind.HANDOVER,
        subject=conversation,
        subject_label=str(conversation),
        reason=reason,
        raised_by=f"persona {conversation.persona.slug} v{conversation.version.number}",
        risk=Risk.MEDIUM,
        requested_by=conversation.client,
        payload={
            "conversation": str(conversation.pk),
            "persona": conversation.persona.slug,
            "version": conversation.version.number,
            "reason": reason,
        },
        due_in=dt.timedelta(minutes=settings.PERSONAS_HANDOVER_MINUTES),
    )
    _audit(actor=ctx.actor, action="persona.conversation.escalated", target=conversation, details={"reason": redacted})


def _redact_slots(conversation: Conversation) -> None:
    slots = (conversation.state or {}).get("slots") or {}
    conversation.state = {
        **conversation.state,
        "slots": {
            name: detectors.redact(value, detectors.detect(value, detectors.PII_KINDS))
            if isinstance(value, str)
            else value
            for name, value in slots.items()
        },
    }


def _save(conversation: Conversation, *fields: str) -> None:
    conversation.updated_at = timezone.now()
    conversation.save(update_fields=[*fields, "last_seq", "updated_at"])


def _locked(conversation: Conversation, *, client: User | None = None) -> Conversation:
    """The conversation, locked; with ``client``, only if it is that client's (404 otherwise)."""
    found = Conversation.objects.select_for_update(of=("self",)).select_related("persona", "version", "client")
    if client is not None:
        found = found.filter(client=client)
    locked = found.filter(pk=conversation.pk).first()
    if locked is None:
        raise NotFound("There is no such conversation of yours.")
    return locked


def _close(conversation: Conversation, spec: Mapping[str, Any]) -> None:
    conversation.status, conversation.closed_at = ConversationStatus.CLOSED, timezone.now()
    if spec.get("pii") == "redact":
        _redact_slots(conversation)
