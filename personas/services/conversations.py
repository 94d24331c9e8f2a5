"""Conversations as their client sees them: ``conversation_start`` (pinning the persona and guardrail versions and
greeting) and ``conversation_message`` (a turn: ``input`` guardrails, the dialogue engine, the persona's reply),
with the hand-off to an agent a flow asks for and what a message gets while that agent works. Each commits what it
decided with the scripted texts first, and has them phrased after (``personas.services.phrasing``).
"""

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from agents import models as agent_models
from agents import services as agent_services
from audit.context import audit_context
from config.errors import Conflict, DomainError
from governance.guardrails import POLICY_KIND, guardrail_check
from governance.models import LabelPointer
from governance.services import audit_actor, label_resolve
from personas import engine, receipts
from personas.models import Conversation, ConversationStatus, Message, Role
from personas.receipts import Answer
from personas.services import phrasing
from personas.services.approval import PERSONA_KIND
from personas.services.turns import (
    _audit,
    _close,
    _Context,
    _context,
    _decision_reason,
    _escalate,
    _facts,
    _guardrail_flag,
    _locked,
    _Outgoing,
    _persona_message,
    _redacted,
    _reply,
    _save,
    _store,
)


def conversation_start(*, client: User, persona: str, label: str = "production") -> Conversation:
    """Start a conversation with the persona version released under ``label`` (pinned, with the guardrail
    policies released under the same label) and send the greeting: committed as scripted, then phrased by the
    persona's model, if it has one, with no transaction open (``personas.services.phrasing``)."""
    conversation, ctx, messages = _start(client=client, persona=persona, label=label)
    phrasing.phrase(ctx, messages)
    return conversation


@transaction.atomic
def _start(*, client: User, persona: str, label: str) -> tuple[Conversation, _Context, list[Message]]:
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
            details={
                "persona": persona,
                "version": version.number,
                "label": label,
                "policies": [f"{p['slug']} v{p['version']}" for p in conversation.policy_versions],
                "messages": [m.seq for m in messages],
            },
        )
        return conversation, ctx, messages


def conversation_message(*, client: User, conversation: Conversation, text: str, idempotency_key: str = "") -> Answer:
    """The user's message and what the persona answers: the stored messages of the turn, the user's first, and the
    status the turn left the conversation in.

    A closed conversation refuses messages (409). While a person has the conversation, the message is stored for
    them and the persona stays silent. With an ``idempotency_key`` used before in this conversation for the same
    text, the answer is that turn's again and nothing is stored (``personas.receipts``).

    The turn is decided and committed under the conversation's lock with the scripted texts; the persona's model,
    if it has one, phrases them after that, with no transaction open (``personas.services.phrasing``).
    """
    answer, ctx = _turn(client=client, conversation=conversation, text=text, idempotency_key=idempotency_key)
    if ctx is not None:
        phrasing.phrase(ctx, answer.messages)
    return answer


@transaction.atomic
def _turn(
    *, client: User, conversation: Conversation, text: str, idempotency_key: str
) -> tuple[Answer, _Context | None]:
    """The turn, committed as scripted, and its context for phrasing; no context for a replayed turn."""
    conversation = _locked(conversation, client=client)
    if idempotency_key and (answered := receipts.replay(conversation, idempotency_key, text)):
        return answered, None
    if conversation.status == ConversationStatus.CLOSED:
        raise Conflict("This conversation is closed: start a new one.", code="closed")
    with audit_context(correlation_id=conversation.correlation_id):
        ctx = _context(conversation, audit_actor(client))
        flow_before = (conversation.state or {}).get("flow") or ""
        user, replies, turn = _heard(ctx, text)
        messages = _store(ctx, [user, *replies])
        _settle(ctx, turn, messages, flow_before)
        _audit(
            actor=ctx.actor,
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
        return Answer(messages, conversation.status), ctx


def _heard(ctx: _Context, text: str) -> tuple[_Outgoing, list[_Outgoing], engine.Turn | None]:
    """The user's message as the ``input`` guardrails leave it, the persona's replies, and the engine's turn when
    the engine ran."""
    conversation = ctx.conversation
    user = _Outgoing(text, Role.USER)
    replies: list[_Outgoing] = []
    decision = guardrail_check(
        checkpoint="input", facts=_facts(ctx, text), policy_refs=ctx.policies, actor=ctx.actor, target=conversation
    )
    if decision.effect != "allow":
        user.flags.append(_guardrail_flag(decision))
    if decision.effect == "redact":
        user.text = _redacted(decision, text)
    if conversation.status == ConversationStatus.ESCALATED:
        return user, replies, None  # a person answers from the console; the message is stored for them
    if conversation.status == ConversationStatus.WAITING_ON_AGENT and decision.effect not in {"deny", "escalate"}:
        return user, replies, _while_working(ctx, user, replies)
    if decision.effect == "deny":
        denied = (decision.matched[-1].message if decision.matched else "") or engine.message(ctx.spec, "denied")
        replies.append(_persona_message(ctx, _reply(ctx, denied, "denied")))
        return user, replies, None
    if decision.effect in {"escalate", "require_approval"}:
        replies.append(_persona_message(ctx, _reply(ctx, ctx.spec["handover"], "handover")))
        ctx.escalate = _decision_reason(decision)
        return user, replies, None
    return user, replies, _respond(ctx, user.text, replies)


def _settle(ctx: _Context, turn: engine.Turn | None, messages: list[Message], flow_before: str) -> None:
    """What the turn leaves the conversation in: a message queued for the agent at work, a hand-over to a person or
    the close a flow asked for; saved."""
    conversation = ctx.conversation
    user = messages[0]
    if conversation.status == ConversationStatus.WAITING_ON_AGENT and any(f["kind"] == "queued" for f in user.flags):
        conversation.state = {**conversation.state, "queued": [*conversation.state.get("queued", []), user.seq]}
    if ctx.escalate:
        _escalate(ctx, ctx.escalate)
    elif turn is not None and turn.outcome.close:
        _close(conversation, ctx.spec)
    _save(conversation, "state", "status", "escalation_reason", "closed_at")
    if conversation.status == ConversationStatus.CLOSED:
        _audit(
            actor=ctx.actor,
            action="persona.conversation.closed",
            target=conversation,
            details={"by": "flow", "flow": (turn.matched_flow if turn else "") or flow_before},
        )


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
            requested_by=conversation.client,
            agent=handoff["agent"],
            input=dict(handoff["input"]),
            label=handoff["label"],
            origin=f"{ORIGIN}{conversation.pk}",
            correlation_id=conversation.correlation_id,
        )
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
    _audit(
        actor=ctx.actor,
        action="persona.conversation.handed_off",
        target=conversation,
        details={
            "agent": handoff["agent"],
            "label": handoff["label"],
            "run": str(run.pk),
            "version": run.version.number,
        },
    )


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
