"""The ``run_finished`` receiver: when the agent run a conversation handed off to is done, relay its result in the
persona's voice (or hand the conversation to a person when the run did not succeed), then answer the messages
queued while it worked. Registered at startup because ``personas.services`` imports this module.

The relay runs inside the transaction that ends the run; the persona's model, if it has one, phrases what it
stored once that transaction has committed (``personas.services.phrasing``).
"""

from collections.abc import Callable
from functools import partial
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from agents import models as agent_models
from agents.signals import run_finished
from audit.context import Actor, audit_context
from personas import engine, flows
from personas.models import Conversation, ConversationStatus
from personas.services import phrasing
from personas.services.conversations import ORIGIN, _respond
from personas.services.turns import _audit, _context, _escalate, _Outgoing, _persona_message, _reply, _save, _store


@receiver(run_finished, dispatch_uid="personas.run_finished")
def _run_finished(sender: Any, run: Any, **kwargs: Any) -> Callable[[], None] | None:
    """A run a conversation handed off to: its answer is relayed with the run's end (``agents.signals``)."""
    return partial(_relay, run) if run.origin.startswith(ORIGIN) else None


def _relay(run: Any) -> None:
    """The agent behind a conversation is done: relay its result in the persona's voice, or hand the
    conversation to a person when the run failed, was rejected or cancelled; then answer what was queued."""
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
            slots = {
                "persona_name": conversation.version.name,
                **conversation.state.get("slots", {}),
                "result": run.result or {},
            }
            relay = engine.Reply(flows.render(handoff["reply"], slots), "relay", handoff["flow"], handoff["step"])
            replies.append(_persona_message(ctx, relay))
        else:
            ctx.escalate = (
                f"The agent {run.agent.slug!r} (run {str(run.pk)[:8]}) {run.get_status_display()}: "
                f"{run.error or 'no reason given'}"
            )
            replies.append(_persona_message(ctx, _reply(ctx, ctx.spec["handover"], "handover")))
        _audit(
            actor=actor,
            action="persona.conversation.agent_answered",
            target=conversation,
            details={"run": str(run.pk), "status": run.status},
        )
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
        _audit(
            actor=actor,
            action="persona.conversation.turn",
            target=conversation,
            details={"messages": [m.seq for m in messages], "answered_queued": answered, "status": conversation.status},
        )
        transaction.on_commit(partial(phrasing.phrase, ctx, messages), robust=True)
