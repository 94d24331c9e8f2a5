"""Conversations with personas: every state change, each in one transaction with its audit event.

A turn runs the ``input`` guardrails on the user's text, the dialogue engine (``personas.engine``), and then, on
every outgoing text, the persona's style guide (``block`` → the fallback message, ``rewrite`` → the substitution,
``warn`` → a flag) and the ``output`` guardrails. Flags are stored with the message they concern. What the turn
asks of the world (a hand-over to a person, closing) is carried out here. Transcripts are stored redacted when the
persona's ``pii`` is ``redact``. A persona's model phrasing is never asked inside a transaction: the turn commits
its scripted texts, and the phrasings, judged the same way, replace them in a short transaction of their own.

The code lives in submodules: ``approval`` (the persona's style check), ``turns`` (the building blocks of a turn),
``phrasing`` (the persona's model phrasing, once a turn is committed), ``conversations`` (start and message),
``agent_answers`` (the ``run_finished`` receiver) and ``operator`` (closing, replies, hand-back and hand-over
expiry). Every public name is importable from here; importing the receivers' modules here registers them at
startup.
"""

from personas.services import agent_answers, operator  # noqa: F401  (registers the signal receivers)
from personas.services.approval import (
    PERSONA_KIND,
    STYLE_GUIDE_KIND,
    check_persona_style,
    style_guide_version,
    validate_style_guide_reference,
)
from personas.services.conversations import ORIGIN, conversation_message, conversation_start
from personas.services.operator import (
    REPLY_PERMISSION,
    conversation_close,
    conversation_hand_back,
    conversation_reply,
)
from personas.services.phrasing import PHRASING_SYSTEM

__all__ = [
    "ORIGIN",
    "PERSONA_KIND",
    "PHRASING_SYSTEM",
    "REPLY_PERMISSION",
    "STYLE_GUIDE_KIND",
    "check_persona_style",
    "conversation_close",
    "conversation_hand_back",
    "conversation_message",
    "conversation_reply",
    "conversation_start",
    "style_guide_version",
    "validate_style_guide_reference",
]
