"""Conversations with personas: every state change, each in one transaction with its audit event.

A turn runs the ``input`` guardrails on the user's text, the dialogue engine (``personas.engine``), and then, on
every outgoing text, the persona's style guide (``block`` → the fallback message, ``rewrite`` → the substitution,
``warn`` → a flag) and the ``output`` guardrails. Flags are stored with the message they concern. What the turn
asks of the world (a hand-over to a person, closing) is carried out here. Transcripts are stored redacted when the
persona's ``pii`` is ``redact``.
"""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from agents import models as agent_models
from agents import providers
from agents import services as agent_services
from agents.signals import run_finished
from audit.context import Actor, audit_context
from audit.services import audit_record
from config.errors import Conflict, DomainError, NotAllowed, NotFound
from governance import detectors, policies, selectors
from governance.checks import CheckResult, Finding, Severity
from governance.guardrails import POLICY_KIND, guardrail_check
from governance.models import LabelPointer, ReviewItem, ReviewKind, ReviewStatus, Risk, Version, VersionStatus
from governance.services import (
    audit_actor,
    label_resolve,
    review_item_open,
    review_item_resolve,
    review_item_withdraw,
)
from governance.signals import review_item_expired
from personas import engine, flows, receipts, styleguide
from personas.models import Conversation, ConversationStatus, Message, Role
from personas.receipts import Answer
from personas.signals import operator_replied

PERSONA_KIND = "persona"
STYLE_GUIDE_KIND = "style_guide"
REPLY_PERMISSION = "personas.reply_conversation"

# --- the persona's approval check -----------------------------------------------------------------------------


def style_guide_version(reference: Mapping[str, Any] | None) -> Version | None:
    """The style guide version a persona spec pins, or None when it names none (or one that does not exist)."""
    if not reference:
        return None
    return (
        Version.objects.select_related("object")
        .filter(object__kind=STYLE_GUIDE_KIND, object__slug=reference["slug"], number=reference["version"])
        .first()
    )


def validate_style_guide_reference(spec: dict[str, Any]) -> dict[str, list[str]]:
    reference = spec.get("style_guide")
    if reference and style_guide_version(reference) is None:
        return {"style_guide": [f"There is no style guide {reference['slug']!r} v{reference['version']}."]}
    return {}


def check_persona_style(spec: dict[str, Any]) -> CheckResult:
    """Lint every text the persona can send against its pinned style guide: anything ``block`` stops approval;
    rewrites and warnings are shown to the reviewer. The guide version itself must be approved."""
    name = "persona.style"
    guide = style_guide_version(spec.get("style_guide"))
    if guide is None:
        return CheckResult(name, (Finding("no style guide: the persona's words are not checked", "warning"),))
    findings: list[Finding] = []
    if guide.status != VersionStatus.APPROVED:
        findings.append(
            Finding(f"{guide} is {guide.get_status_display()}: a persona may only follow an approved version",
                    path="style_guide.version")
        )  # fmt: skip
    for path, where, template in flows.templates(spec):
        for violation in styleguide.lint(template, guide.spec):
            severity: Severity = "error" if violation.severity == "block" else "warning"
            action = {"block": "blocked", "rewrite": "will be rewritten", "warn": "flagged"}[violation.severity]
            findings.append(Finding(f"{where}: {action} by {guide}: {violation.message}", severity, path))
    return CheckResult(name, tuple(findings))


# --- turns ----------------------------------------------------------------------------------------------------


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


PHRASING_SYSTEM = (
    "You rephrase the lines of a customer-facing assistant. Keep every fact, number, name and question exactly; "
    "change only the wording. Answer with the rephrased line alone."
)


def _phrased(ctx: _Context, text: str) -> tuple[str, dict[str, Any] | None]:
    """The model's phrasing of ``text`` when the persona asks for one, linted; the scripted text (and a flag
    saying why) on any error, a timeout or a phrasing the style guide blocks."""
    phrasing = ctx.spec.get("llm_phrasing") or {}
    if not phrasing.get("enabled"):
        return text, None
    model = {"provider": phrasing["provider"], "name": phrasing["model"], "base_url": phrasing.get("base_url"),
             "api_key_env": phrasing.get("api_key_env") or f"{phrasing['provider'].upper()}_API_KEY",
             "parameters": phrasing.get("parameters") or {}}  # fmt: skip
    system = " ".join(filter(None, [PHRASING_SYSTEM, ctx.spec.get("tone"), phrasing.get("instructions")]))
    messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    try:
        completion = providers.get_provider(model["provider"]).complete(
            model=model, messages=messages, tools=[], timeout=float(phrasing.get("timeout_seconds", 5)), script=[]
        )
    except providers.ProviderError as error:
        return text, {"kind": "phrasing.fallback", "reason": str(error)[:500]}
    phrased = completion.text.strip()
    if not phrased:
        return text, {"kind": "phrasing.fallback", "reason": "the model answered nothing"}
    if ctx.guide is not None:
        blocked = [v.message for v in styleguide.lint(phrased, ctx.guide) if v.severity == "block"]
        if blocked:
            return text, {"kind": "phrasing.fallback", "reason": "the style guide blocks it", "violations": blocked}
    return phrased, {"kind": "phrasing.model", "model": f"{model['provider']} {model['name']}"}


def _persona_message(ctx: _Context, reply: engine.Reply) -> _Outgoing:
    """An outgoing text: phrased by a model when the persona asks for it, then through the style guide and the
    ``output`` guardrails."""
    text, phrasing_flag = _phrased(ctx, reply.text)
    out = _Outgoing(text, Role.PERSONA, flow=reply.flow, step=reply.step)
    if phrasing_flag is not None:
        out.flags.append(phrasing_flag)
    fallback = _reply(ctx, ctx.spec["fallback"], "fallback").text
    if ctx.guide is not None:
        violations = styleguide.lint(out.text, ctx.guide)
        blocking = [v for v in violations if v.severity == "block"]
        if blocking:
            out.flags.append({"kind": "style.block", "violations": [v.message for v in blocking]})
            out.text = fallback
        else:
            rewrites = [v for v in violations if v.severity == "rewrite"]
            if rewrites:
                out.flags.append({"kind": "style.rewrite", "violations": [v.message for v in rewrites]})
                out.text = styleguide.rewrite(out.text, rewrites)
            warnings = [v for v in violations if v.severity == "warn"]
            if warnings:
                out.flags.append({"kind": "style.warn", "violations": [v.message for v in warnings]})
    decision = guardrail_check(
        checkpoint="output", facts=_facts(ctx, out.text), policy_refs=ctx.policies, actor=ctx.actor,
        target=ctx.conversation,
    )  # fmt: skip
    if decision.effect == "deny":
        out.flags.append(_guardrail_flag(decision))
        out.text = fallback
    elif decision.effect == "redact":
        out.flags.append(_guardrail_flag(decision))
        out.text = _redacted(decision, out.text)
    elif decision.effect in {"escalate", "require_approval"}:
        out.flags.append(_guardrail_flag(decision))
        out.text = _reply(ctx, ctx.spec["handover"], "handover").text
        ctx.escalate = ctx.escalate or _decision_reason(decision)
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
    redact = ctx.spec.get("pii", "keep") == "redact"
    messages = []
    for offset, out in enumerate(outgoing, start=1):
        text, flags = out.text, list(out.flags)
        if redact:
            found = detectors.detect(text, detectors.PII_KINDS)
            if found:
                text = detectors.redact(text, found)
                flags.append({"kind": "pii.redacted", "found": sorted({d.kind for d in found})})
        messages.append(
            Message(conversation=conversation, seq=last + offset, role=out.role, text=text, flags=flags,
                    flow=out.flow, step=out.step, author=out.author)
        )  # fmt: skip
    conversation.last_seq = last + len(messages)  # saved by _save, which every caller of _store ends with
    return Message.objects.bulk_create(messages)


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
        payload={"conversation": str(conversation.pk), "persona": conversation.persona.slug,
                 "version": conversation.version.number, "reason": reason},
        due_in=dt.timedelta(minutes=settings.PERSONAS_HANDOVER_MINUTES),
    )  # fmt: skip
    _audit(actor=ctx.actor, action="persona.conversation.escalated", target=conversation, details={"reason": redacted})


def _redact_slots(conversation: Conversation) -> None:
    slots = (conversation.state or {}).get("slots") or {}
    conversation.state = {
        **conversation.state,
        "slots": {
            name: detectors.redact(value, detectors.detect(value, detectors.PII_KINDS)) if isinstance(value, str)
            else value
            for name, value in slots.items()
        },
    }  # fmt: skip


def _save(conversation: Conversation, *fields: str) -> None:
    conversation.updated_at = timezone.now()
    conversation.save(update_fields=[*fields, "last_seq", "updated_at"])


@transaction.atomic
def conversation_start(*, client: User, persona: str, label: str = "production") -> Conversation:
    """Start a conversation with the persona version released under ``label`` (pinned, with the guardrail
    policies released under the same label) and send the greeting."""
    version = label_resolve(kind=PERSONA_KIND, slug=persona, label=label)
    pinned = (
        LabelPointer.objects.filter(object__kind=POLICY_KIND, label__name=label)
        .select_related("object", "version")
        .order_by("object__slug")
    )
    conversation = Conversation.objects.create(
        persona=version.object,
        version=version,
        label=label,
        client=client,
        policy_versions=[{"slug": p.object.slug, "version": p.version.number, "id": p.version.pk} for p in pinned],
    )
    with audit_context(correlation_id=conversation.correlation_id):
        actor = audit_actor(client)
        ctx = _context(conversation, actor)
        turn = engine.greet(ctx.spec, conversation.version.name)
        messages = _store(ctx, [_persona_message(ctx, reply) for reply in turn.replies])
        conversation.state = turn.state
        if ctx.escalate:
            _escalate(ctx, ctx.escalate)
        _save(conversation, "state", "status", "escalation_reason")
        _audit(
            actor=actor,
            action="persona.conversation.started",
            target=conversation,
            details={"persona": persona, "version": version.number, "label": label,
                     "policies": [f"{p['slug']} v{p['version']}" for p in conversation.policy_versions],
                     "messages": [m.seq for m in messages]},
        )  # fmt: skip
        return conversation


def _locked(conversation: Conversation, *, client: User | None = None) -> Conversation:
    """The conversation, locked; with ``client``, only if it is that client's (404 otherwise)."""
    found = Conversation.objects.select_for_update(of=("self",)).select_related("persona", "version", "client")
    if client is not None:
        found = found.filter(client=client)
    locked = found.filter(pk=conversation.pk).first()
    if locked is None:
        raise NotFound("There is no such conversation of yours.")
    return locked


@transaction.atomic
def conversation_message(*, client: User, conversation: Conversation, text: str, idempotency_key: str = "") -> Answer:
    """The user's message and what the persona answers: the stored messages of the turn, the user's first, and the
    status the turn left the conversation in.

    A closed conversation refuses messages (409). While a person has the conversation, the message is stored for
    them and the persona stays silent. With an ``idempotency_key`` used before in this conversation for the same
    text, the answer is that turn's again and nothing is stored (``personas.receipts``).
    """
    conversation = _locked(conversation, client=client)
    if idempotency_key and (answered := receipts.replay(conversation, idempotency_key, text)):
        return answered
    if conversation.status == ConversationStatus.CLOSED:
        raise Conflict("This conversation is closed: start a new one.", code="closed")
    with audit_context(correlation_id=conversation.correlation_id):
        actor = audit_actor(client)
        ctx = _context(conversation, actor)
        user = _Outgoing(text, Role.USER)
        replies: list[_Outgoing] = []
        turn: engine.Turn | None = None
        flow_before = (conversation.state or {}).get("flow") or ""
        decision = guardrail_check(
            checkpoint="input", facts=_facts(ctx, text), policy_refs=ctx.policies, actor=actor, target=conversation
        )
        if decision.effect != "allow":
            user.flags.append(_guardrail_flag(decision))
        if decision.effect == "redact":
            user.text = _redacted(decision, text)
        if conversation.status == ConversationStatus.ESCALATED:
            pass  # a person answers from the console; the message is stored for them, as the guardrails left it
        elif conversation.status == ConversationStatus.WAITING_ON_AGENT and decision.effect not in {"deny", "escalate"}:
            turn = _while_working(ctx, user, replies)
        elif decision.effect == "deny":
            denied = (decision.matched[-1].message if decision.matched else "") or engine.message(ctx.spec, "denied")
            replies.append(_persona_message(ctx, _reply(ctx, denied, "denied")))
        elif decision.effect in {"escalate", "require_approval"}:
            replies.append(_persona_message(ctx, _reply(ctx, ctx.spec["handover"], "handover")))
            ctx.escalate = _decision_reason(decision)
        else:
            turn = _respond(ctx, user.text, replies)
        messages = _store(ctx, [user, *replies])
        if conversation.status == ConversationStatus.WAITING_ON_AGENT and any(
            f["kind"] == "queued" for f in user.flags
        ):
            conversation.state = {
                **conversation.state,
                "queued": [*conversation.state.get("queued", []), messages[0].seq],
            }
        if ctx.escalate:
            _escalate(ctx, ctx.escalate)
        elif turn is not None and turn.outcome.close:
            _close(conversation, ctx.spec)
        _save(conversation, "state", "status", "escalation_reason", "closed_at")
        if conversation.status == ConversationStatus.CLOSED:
            _audit(actor=actor, action="persona.conversation.closed", target=conversation,
                   details={"by": "flow", "flow": (turn.matched_flow if turn else "") or flow_before})  # fmt: skip
        _audit(
            actor=actor,
            action="persona.conversation.turn",
            target=conversation,
            details={
                "messages": [m.seq for m in messages],
                "intent": turn.intent if turn else "",
                "flow": (turn.matched_flow or conversation.state.get("flow") or flow_before or "") if turn else "",
                "flags": sorted({flag["kind"] for m in messages for flag in m.flags}),
                "status": conversation.status,
                **({"idempotency_key": idempotency_key} if idempotency_key else {}),
            },
        )
        if idempotency_key:
            receipts.record(conversation, idempotency_key, text, messages)
        return Answer(messages, conversation.status)


ORIGIN = "personas.conversation:"


def _respond(ctx: _Context, text: str, replies: list[_Outgoing]) -> engine.Turn:
    """Run the dialogue engine on ``text``; its replies go to ``replies``, a hand-off starts the agent's run."""
    conversation = ctx.conversation
    turn = engine.receive(ctx.spec, conversation.state, text, conversation.version.name)
    replies.extend(_persona_message(ctx, reply) for reply in turn.replies)
    conversation.state = turn.state
    ctx.escalate = ctx.escalate or turn.outcome.escalate
    if turn.outcome.handoff is not None and not ctx.escalate:
        _hand_off(ctx, turn.outcome.handoff, replies)
    return turn


def _hand_off(ctx: _Context, handoff: Mapping[str, Any], replies: list[_Outgoing]) -> None:
    """Start the agent's run (its label resolved and pinned now); the conversation waits on it. A run that cannot
    start hands the conversation to a person with the reason."""
    conversation = ctx.conversation
    try:
        run = agent_services.run_start_handoff(
            requested_by=conversation.client, agent=handoff["agent"], input=dict(handoff["input"]),
            label=handoff["label"], origin=f"{ORIGIN}{conversation.pk}", correlation_id=conversation.correlation_id,
        )  # fmt: skip
    except DomainError as error:
        ctx.escalate = (
            f"Flow {handoff['flow']!r}, step {handoff['step']!r} could not hand off to the agent "
            f"{handoff['agent']!r} ({handoff['label']}): {error.message}"
        )
        replies.append(_persona_message(ctx, _reply(ctx, ctx.spec["handover"], "handover")))
        return
    conversation.run, conversation.status = run, ConversationStatus.WAITING_ON_AGENT
    conversation.state = {**conversation.state, "handoff": {key: handoff[key] for key in ("reply", "flow", "step")}}
    _save(conversation, "run", "status", "state")
    _audit(actor=ctx.actor, action="persona.conversation.handed_off", target=conversation,
                 details={"agent": handoff["agent"], "label": handoff["label"], "run": str(run.pk),
                          "version": run.version.number})  # fmt: skip


def _while_working(ctx: _Context, user: _Outgoing, replies: list[_Outgoing]) -> engine.Turn | None:
    """A message while the agent works: the persona's ``while_working`` policy says what it gets."""
    conversation = ctx.conversation
    policy = ctx.spec.get("while_working", "queue")
    if policy == "queue":
        user.flags.append({"kind": "queued", "run": str(conversation.run_id)})
        return None
    if policy == "reject":
        replies.append(_persona_message(ctx, _reply(ctx, engine.message(ctx.spec, "busy"), "busy")))
        return None
    run = conversation.run
    assert run is not None
    conversation.status = ConversationStatus.ACTIVE  # first, so the cancelled run is not answered as a failure
    conversation.state = {key: value for key, value in conversation.state.items() if key != "handoff"}
    _save(conversation, "status", "state")
    if run.status not in agent_models.FINISHED_RUN_STATUSES:
        agent_services.run_cancel_handoff(run=run, origin=f"{ORIGIN}{conversation.pk}", reason="the user wrote again")
    user.flags.append({"kind": "interrupted", "run": str(run.pk)})
    return _respond(ctx, user.text, replies)


@receiver(run_finished, dispatch_uid="personas.run_finished")
def _run_finished(sender: Any, run: Any, **kwargs: Any) -> None:
    """The agent behind a conversation is done: relay its result in the persona's voice, or hand the
    conversation to a person when the run failed, was rejected or cancelled; then answer what was queued."""
    if not run.origin.startswith(ORIGIN):
        return
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("persona", "version", "client")
        .filter(pk=run.origin.removeprefix(ORIGIN), run=run, status=ConversationStatus.WAITING_ON_AGENT)
        .first()
    )
    if conversation is None:
        return  # interrupted, or answered already
    actor = Actor.system(f"persona {conversation.persona.slug}")
    with audit_context(actor=actor, correlation_id=conversation.correlation_id):
        ctx = _context(conversation, actor)
        handoff = conversation.state.get("handoff") or {"reply": "{{result.answer}}", "flow": "", "step": ""}
        queued = list(conversation.state.get("queued", []))
        conversation.state = {k: v for k, v in conversation.state.items() if k not in ("handoff", "queued")}
        conversation.status = ConversationStatus.ACTIVE
        replies: list[_Outgoing] = []
        if run.status == agent_models.RunStatus.SUCCEEDED:
            slots = {"persona_name": conversation.version.name, **conversation.state.get("slots", {}),
                     "result": run.result or {}}  # fmt: skip
            relay = engine.Reply(flows.render(handoff["reply"], slots), "relay", handoff["flow"], handoff["step"])
            replies.append(_persona_message(ctx, relay))
        else:
            ctx.escalate = (
                f"The agent {run.agent.slug!r} (run {str(run.pk)[:8]}) {run.get_status_display()}: "
                f"{run.error or 'no reason given'}"
            )
            replies.append(_persona_message(ctx, _reply(ctx, ctx.spec["handover"], "handover")))
        _audit(actor=actor, action="persona.conversation.agent_answered", target=conversation,
                     details={"run": str(run.pk), "status": run.status})  # fmt: skip
        answered = []
        for seq in queued:
            if ctx.escalate or conversation.status != ConversationStatus.ACTIVE:
                break
            message = conversation.messages.get(seq=seq)
            _respond(ctx, message.text, replies)
            answered.append(seq)
        remaining = [seq for seq in queued if seq not in answered]
        if remaining:
            conversation.state = {**conversation.state, "queued": remaining}
        messages = _store(ctx, replies)
        if ctx.escalate:
            _escalate(ctx, ctx.escalate)
        _save(conversation, "state", "status", "escalation_reason")
        _audit(actor=actor, action="persona.conversation.turn", target=conversation,
                     details={"messages": [m.seq for m in messages], "answered_queued": answered,
                              "status": conversation.status})  # fmt: skip


def _close(conversation: Conversation, spec: Mapping[str, Any]) -> None:
    conversation.status, conversation.closed_at = ConversationStatus.CLOSED, timezone.now()
    if spec.get("pii") == "redact":
        _redact_slots(conversation)


def _pending_handover(conversation: Conversation) -> ReviewItem | None:
    return ReviewItem.objects.filter(
        kind=ReviewKind.HANDOVER,
        subject_type=Conversation._meta.label_lower,
        subject_id=str(conversation.pk),
        status=ReviewStatus.PENDING,
    ).first()


@transaction.atomic
def conversation_close(
    *, actor: User, conversation: Conversation, rating: int | None = None, comment: str = "", as_operator: bool = False
) -> Conversation:
    """Close a conversation: its client may (with a rating from 1 to 5 and a comment), and so may an Operator
    (``as_operator``, from the console). A pending hand-over is resolved by the Operator who closes, or withdrawn
    when the client closes."""
    conversation = _locked(conversation)
    if as_operator and not actor.has_perm(REPLY_PERMISSION):
        raise NotAllowed(f"Closing conversations as an operator needs the permission {REPLY_PERMISSION}.")
    if not as_operator and conversation.client_id != actor.pk:
        raise NotAllowed("Only the conversation's client or an Operator may close it.")
    is_client = not as_operator
    if conversation.status == ConversationStatus.CLOSED:
        raise Conflict("This conversation is closed already.", code="closed")
    if rating is not None and not 1 <= rating <= 5:
        raise DomainError("The rating is out of range.", fields={"rating": ["Give a rating from 1 to 5."]})
    item = _pending_handover(conversation)
    if item is not None:
        if is_client:
            review_item_withdraw(item=item)
        else:
            review_item_resolve(actor=actor, item=item, comment=comment or "closed by an operator")
    _close(conversation, conversation.version.spec)
    if is_client:
        conversation.rating, conversation.comment = rating, comment
    _save(conversation, "status", "closed_at", "state", "rating", "comment")
    _audit(
        actor=audit_actor(actor),
        action="persona.conversation.closed",
        target=conversation,
        details={"by": "client" if is_client else "operator", "rating": rating if is_client else None},
    )
    return conversation


def _require_escalated(actor: User, conversation: Conversation) -> None:
    if not actor.has_perm(REPLY_PERMISSION):
        raise NotAllowed(f"Answering conversations needs the permission {REPLY_PERMISSION} (Operators).")
    if conversation.status != ConversationStatus.ESCALATED:
        raise Conflict(
            f"This conversation is {conversation.get_status_display()}: only an escalated one is answered by a person.",
            code="not_escalated",
        )


@transaction.atomic
def conversation_reply(*, actor: User, conversation: Conversation, text: str) -> Message:
    """An Operator's answer to an escalated conversation, stored as an operator message."""
    conversation = _locked(conversation)
    _require_escalated(actor, conversation)
    if not text.strip():
        raise DomainError("Write a reply.", fields={"text": ["This field may not be blank."]})
    ctx = _context(conversation, audit_actor(actor))
    (message,) = _store(ctx, [_Outgoing(text, Role.OPERATOR, author=actor)])
    _save(conversation)
    _audit(
        actor=ctx.actor,
        action="persona.conversation.operator_replied",
        target=conversation,
        details={"message": message.seq},
    )
    operator_replied.send(sender=Conversation, conversation=conversation, message=message)
    return message


@transaction.atomic
def conversation_hand_back(*, actor: User, conversation: Conversation, comment: str = "") -> Conversation:
    """An Operator gives an escalated conversation back to the persona, which says so and starts afresh."""
    conversation = _locked(conversation)
    _require_escalated(actor, conversation)
    ctx = _context(conversation, audit_actor(actor))
    item = _pending_handover(conversation)
    if item is not None:
        review_item_resolve(actor=actor, item=item, comment=comment or "handed back to the persona")
    conversation.status, conversation.escalation_reason = ConversationStatus.ACTIVE, ""
    conversation.state = {**engine.initial_state(), "slots": (conversation.state or {}).get("slots", {})}
    back = _reply(ctx, engine.message(ctx.spec, "handed_back"), "intent")
    messages = _store(ctx, [_persona_message(ctx, back)])
    if ctx.escalate:
        _escalate(ctx, ctx.escalate)
    _save(conversation, "status", "escalation_reason", "state")
    _audit(
        actor=ctx.actor,
        action="persona.conversation.handed_back",
        target=conversation,
        details={"comment": comment, "messages": [m.seq for m in messages]},
    )
    return conversation


@receiver(review_item_expired, dispatch_uid="personas.handover_expired")
def _handover_expired(sender: Any, item: ReviewItem, **kwargs: Any) -> None:
    """Nobody took the conversation in time: close it with a system message (expiry denies)."""
    if item.kind != ReviewKind.HANDOVER or item.subject_type != Conversation._meta.label_lower:
        return
    conversation = Conversation.objects.filter(pk=item.subject_id).select_related("persona", "version").first()
    if conversation is None or conversation.status != ConversationStatus.ESCALATED:
        return
    conversation = _locked(conversation)
    actor = Actor.system("review-expiry")
    ctx = _context(conversation, actor)
    text = "No one could take over this conversation in time, so it is closed. Please start a new one."
    _store(ctx, [_Outgoing(text, Role.SYSTEM)])
    _close(conversation, ctx.spec)
    _save(conversation, "status", "closed_at", "state")
    _audit(actor=actor, action="persona.conversation.closed", target=conversation, details={"by": "expiry"})
