"""Personas, their style guides, and conversations with them.

A style guide and a persona are governed configuration: their specs live in ``governance`` (kinds
``style_guide`` and ``persona``); the proxies give each its own place in the console. A ``Conversation`` pins
the persona version (and the guardrail policies) it started with and keeps its ``Message`` transcript.
"""

import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from governance.models import GovernedObject, KindManager, Version


class StyleGuide(GovernedObject):
    objects: ClassVar[KindManager] = KindManager("style_guide")

    class Meta:
        proxy = True
        verbose_name = "style guide"


class Persona(GovernedObject):
    objects: ClassVar[KindManager] = KindManager("persona")

    class Meta:
        proxy = True
        verbose_name = "persona"


class ConversationStatus(models.TextChoices):
    ACTIVE = "active", "active"
    WAITING_ON_AGENT = "waiting_on_agent", "waiting on agent"
    ESCALATED = "escalated", "escalated"
    CLOSED = "closed", "closed"


class Conversation(models.Model):
    """A session between an API client's end user and one pinned persona version."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    persona = models.ForeignKey(GovernedObject, on_delete=models.PROTECT, related_name="conversations")
    version = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="conversations")
    label = models.CharField(max_length=40)
    # The guardrail policy versions released under ``label`` when the conversation started: pinned like the persona.
    policy_versions = models.JSONField(default=list, blank=True)
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="conversations")
    status = models.CharField(max_length=20, choices=ConversationStatus.choices, default=ConversationStatus.ACTIVE)
    state = models.JSONField(default=dict, blank=True)
    last_seq = models.PositiveIntegerField(default=0, help_text="The number of the transcript's last message.")
    escalation_reason = models.TextField(blank=True)
    # The agent run of the latest hand-off; it shares the conversation's correlation id in the audit trail.
    run = models.ForeignKey("agents.Run", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    correlation_id = models.UUIDField(default=uuid.uuid4)
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["client", "-created_at"], name="conversation_client_idx"),
            models.Index(fields=["status", "-updated_at"], name="conversation_status_idx"),
            # The console's list, newest first (its order, with the key as the tie-breaker the admin adds).
            models.Index(fields=["-created_at", "-id"], name="conversation_created_idx"),
        ]
        permissions = [("reply_conversation", "Can answer escalated conversations, hand them back or close them")]

    def __str__(self) -> str:
        return f"conversation {str(self.id)[:8]} with {self.persona.slug}"


class Role(models.TextChoices):
    USER = "user", "user"
    PERSONA = "persona", "persona"
    OPERATOR = "operator", "operator"
    SYSTEM = "system", "system"


class Message(models.Model):
    """One message of a transcript, as stored (redacted when the persona says so), with its flags."""

    conversation = models.ForeignKey(Conversation, on_delete=models.PROTECT, related_name="messages")
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=10, choices=Role.choices)
    text = models.TextField()
    flags = models.JSONField(default=list, blank=True)
    flow = models.CharField(max_length=63, blank=True)
    step = models.CharField(max_length=63, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [models.UniqueConstraint(fields=["conversation", "seq"], name="message_seq_unique")]

    def __str__(self) -> str:
        return f"{self.role} #{self.seq}"


class MessageReceipt(models.Model):
    """A user's message sent with an idempotency key, and what its turn answered: a retry with the same key and the
    same text is answered the same, from here, and stores nothing again (``personas.receipts``)."""

    conversation = models.ForeignKey(Conversation, on_delete=models.PROTECT, related_name="receipts")
    idempotency_key = models.CharField(max_length=200)
    # SHA-256 of the text as sent (never the text: the transcript may keep it only redacted).
    text_digest = models.CharField(max_length=64)
    message = models.OneToOneField(Message, on_delete=models.PROTECT, related_name="receipt")
    last_seq = models.PositiveIntegerField(help_text="The last message of the turn: its replies end there.")
    status = models.CharField(max_length=20, choices=ConversationStatus.choices, help_text="As the turn left it.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "idempotency_key"], name="message_idempotency_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.idempotency_key} of {self.conversation_id}"
