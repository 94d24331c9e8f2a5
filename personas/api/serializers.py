"""Serializers for conversations: input per use case, output per resource."""

from rest_framework import serializers

from personas.models import Conversation, Message

MAX_MESSAGE_LENGTH = 4000


class ConversationStartSerializer(serializers.Serializer):
    persona = serializers.SlugField(max_length=80, help_text="The persona's slug.")
    label = serializers.SlugField(  # type: ignore[assignment]  # a field named like Field.label
        max_length=40, default="production", help_text="The release label to talk to."
    )


class MessageInSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=MAX_MESSAGE_LENGTH, trim_whitespace=True)


class CloseSerializer(serializers.Serializer):
    rating = serializers.IntegerField(min_value=1, max_value=5, required=False, allow_null=True, default=None)
    comment = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class MessageSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", default=None, allow_null=True)

    class Meta:
        model = Message
        fields = ["seq", "role", "text", "flags", "flow", "step", "author", "created_at"]


class ConversationSerializer(serializers.ModelSerializer):
    persona = serializers.CharField(source="persona.slug")
    version = serializers.IntegerField(source="version.number")
    messages = MessageSerializer(many=True, read_only=True)
    rating = serializers.IntegerField(min_value=1, max_value=5, allow_null=True, help_text="1 to 5; null: not rated.")

    class Meta:
        model = Conversation
        fields = [
            "id",
            "persona",
            "version",
            "label",
            "status",
            "escalation_reason",
            "run",
            "correlation_id",
            "rating",
            "comment",
            "created_at",
            "updated_at",
            "closed_at",
            "messages",
        ]


class ConversationSummarySerializer(ConversationSerializer):
    class Meta(ConversationSerializer.Meta):
        fields = ["id", "persona", "version", "label", "status", "run", "created_at", "updated_at", "closed_at"]


class TurnSerializer(serializers.Serializer):
    conversation = serializers.UUIDField()
    status = serializers.CharField()
    message = MessageSerializer(help_text="Your message, as stored.")
    replies = MessageSerializer(many=True, help_text="What the persona answered (none while a person has it).")
