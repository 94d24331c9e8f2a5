"""Serializers for agents, tools, runs and approvals: input per use case, output per resource."""

from rest_framework import serializers

from agents.models import Run, RunOutcome, Step
from governance.api.serializers import ReviewItemSerializer
from governance.models import Version


class RunStartSerializer(serializers.Serializer):
    input = serializers.DictField(help_text="The run's input, a JSON object.")
    label = serializers.SlugField(  # type: ignore[assignment]  # a field named like Field.label
        max_length=40, default="production", help_text="The release label whose agent version runs."
    )
    idempotency_key = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        help_text="Send the same key again to get the same run back instead of a second one.",
    )


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class CompensateSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class ApprovalDecideSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "reject", "edit"])
    digest = serializers.RegexField(r"^[0-9a-f]{64}$", help_text="The approval's digest, as shown to you.")
    arguments = serializers.DictField(required=False, help_text="With edit: the arguments to run the tool with.")
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)


class ToolRequestSerializer(serializers.Serializer):
    """What an HTTP tool's version calls (its secret headers by name only: their values are never shown)."""

    method = serializers.CharField()
    url_template = serializers.CharField()
    headers = serializers.DictField(child=serializers.CharField())
    allowed_hosts = serializers.ListField(child=serializers.CharField())
    allow_private = serializers.BooleanField()
    secret_headers = serializers.ListField(child=serializers.CharField())


class ToolSerializer(serializers.Serializer):
    """A tool and its definition as released under ``label`` (the definition's fields are null when nothing is)."""

    name = serializers.CharField()
    kind = serializers.CharField()
    available = serializers.BooleanField()
    label = serializers.CharField(help_text="The label whose released version is shown.")  # type: ignore[assignment]
    version = serializers.IntegerField(allow_null=True, help_text="The version released under the label.")
    description = serializers.CharField(allow_null=True)
    parameters = serializers.JSONField(allow_null=True, help_text="JSON Schema of the arguments.")
    side_effect = serializers.CharField(allow_null=True)
    risk = serializers.CharField(allow_null=True)
    idempotent = serializers.BooleanField(allow_null=True)
    timeout_seconds = serializers.FloatField(allow_null=True)
    compensation = serializers.JSONField(allow_null=True)
    request = ToolRequestSerializer(allow_null=True, help_text="HTTP tools: the request; null for Python tools.")
    labels = serializers.DictField(child=serializers.IntegerField(), help_text="Each label and the version under it.")


class ToolVersionSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author_label")

    class Meta:
        model = Version
        fields = ["number", "status", "author", "note", "checksum", "spec", "created_at", "decided_at"]


class ToolDetailSerializer(ToolSerializer):
    versions = ToolVersionSerializer(many=True, help_text="Every version, newest first.")


class StepSerializer(serializers.ModelSerializer):
    tool = serializers.CharField(source="detail.tool_name", default="")
    duration_ms = serializers.IntegerField(read_only=True, allow_null=True)
    approval = serializers.IntegerField(source="review_id", default=None, allow_null=True)
    compensates = serializers.IntegerField(source="compensates.seq", default=None, allow_null=True)

    class Meta:
        model = Step
        fields = [
            "seq",
            "kind",
            "status",
            "tool",
            "arguments",
            "result",
            "error",
            "tokens",
            "cost",
            "approval",
            "compensates",
            "started_at",
            "finished_at",
            "duration_ms",
        ]


class RunSerializer(serializers.ModelSerializer):
    agent = serializers.CharField(source="agent.slug")
    version = serializers.IntegerField(source="version.number")
    requested_by = serializers.CharField(source="requested_by.username")
    outcome = serializers.ChoiceField(
        choices=RunOutcome.choices,
        allow_null=True,
        read_only=True,
        help_text="What the run achieved (docs/metrics.md); null while it is not finished.",
    )
    outcome_reason = serializers.CharField(read_only=True, help_text="Why the run has that outcome; empty while null.")

    class Meta:
        model = Run
        fields = [
            "id",
            "agent",
            "version",
            "label",
            "status",
            "outcome",
            "outcome_reason",
            "input",
            "result",
            "error",
            "requested_by",
            "idempotency_key",
            "correlation_id",
            "origin",
            "steps_used",
            "tokens_used",
            "cost_used",
            "budget_extensions",
            "cancel_requested",
            "created_at",
            "started_at",
            "finished_at",
        ]


class RunDetailSerializer(RunSerializer):
    steps = StepSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "steps"]


class ApprovalDetailSerializer(ReviewItemSerializer):
    run = RunDetailSerializer(help_text="The run waiting for the decision, with its timeline so far.")

    class Meta(ReviewItemSerializer.Meta):
        fields = [*ReviewItemSerializer.Meta.fields, "run"]
