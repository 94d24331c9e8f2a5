"""Serializers for governed configuration: input per use case, output per resource."""

from typing import Any

from rest_framework import serializers

from governance import selectors
from governance.models import (
    Decision,
    GovernedObject,
    Label,
    LabelPointer,
    Release,
    ReleaseMove,
    ReviewDecision,
    ReviewItem,
    Version,
)


def _spec_object(value: Any) -> None:
    if not isinstance(value, dict):
        raise serializers.ValidationError("Must be a JSON object.")


class GovernedObjectCreateSerializer(serializers.Serializer):
    slug = serializers.SlugField(max_length=80)
    name = serializers.CharField(max_length=200)
    draft = serializers.JSONField(default=dict, validators=[_spec_object])


class GovernedObjectUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    draft = serializers.JSONField(required=False, validators=[_spec_object])


class GovernedObjectSerializer(serializers.ModelSerializer):
    draft_updated_by = serializers.CharField(source="draft_updated_by.username", default=None, allow_null=True)
    labels = serializers.SerializerMethodField()
    latest_version = serializers.SerializerMethodField()

    class Meta:
        model = GovernedObject
        fields = [
            "kind",
            "slug",
            "name",
            "draft",
            "draft_updated_at",
            "draft_updated_by",
            "labels",
            "latest_version",
            "created_at",
        ]

    def get_labels(self, obj: GovernedObject) -> dict[str, int]:
        """Each label set on this object and the version number it points at."""
        return {pointer.label.name: pointer.version.number for pointer in obj.pointers.all()}

    def get_latest_version(self, obj: GovernedObject) -> dict[str, Any] | None:
        versions = list(obj.versions.all())
        if not versions:
            return None
        latest = max(versions, key=lambda v: v.number)
        return {"number": latest.number, "status": latest.status}


class SubmitSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    label = serializers.SlugField(  # type: ignore[assignment]
        default="production", help_text="Where this version is meant to be released."
    )


class DecisionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReviewDecision
        fields = ["decider_label", "decider_roles", "decision", "comment", "digest", "created_at"]


class ShownDigestMixin(serializers.Serializer):
    digest = serializers.SerializerMethodField()

    def get_digest(self, item: ReviewItem) -> str:
        """Send this back with your decision: it binds the decision to what you were shown."""
        return selectors.review_digest(item)


class ReviewSummarySerializer(ShownDigestMixin, serializers.ModelSerializer):
    decisions = DecisionSerializer(many=True, read_only=True)

    class Meta:
        model = ReviewItem
        fields = ["id", "status", "digest", "approvals_required", "due_at", "decisions"]


class VersionSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author_label")
    review = serializers.SerializerMethodField()

    class Meta:
        model = Version
        fields = [
            "number",
            "name",
            "status",
            "spec",
            "checksum",
            "author",
            "note",
            "checks",
            "created_at",
            "decided_at",
            "review",
        ]

    def get_review(self, version: Version) -> dict[str, Any] | None:
        """The configuration review deciding this version."""
        reviews = list(version.reviews.all())
        return ReviewSummarySerializer(reviews[-1]).data if reviews else None


class VersionDecideSerializer(serializers.Serializer):
    digest = serializers.RegexField(r"^[0-9a-f]{64}$", help_text="The review's digest, as shown to you.")
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)


class ReviewDecideSerializer(VersionDecideSerializer):
    decision = serializers.ChoiceField(choices=[Decision.APPROVE, Decision.REJECT])


class ObjectRollbackSerializer(serializers.Serializer):
    label = serializers.SlugField()  # type: ignore[assignment]
    version = serializers.IntegerField(min_value=1)
    reason = serializers.CharField(max_length=2000)


class MoveInputSerializer(serializers.Serializer):
    kind = serializers.CharField(max_length=40)
    # A slug, or a tool's name (its slug): dots allowed.
    slug = serializers.RegexField(r"^[-a-zA-Z0-9_.]+$", max_length=100)
    label = serializers.SlugField()  # type: ignore[assignment]
    version = serializers.IntegerField(min_value=1)


class ReleaseCreateSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=2000)
    moves = MoveInputSerializer(many=True, allow_empty=False)


class ReleaseRollbackSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class ReleaseMoveSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(source="object.kind")
    slug = serializers.CharField(source="object.slug")
    label = serializers.CharField(source="label.name")  # type: ignore[assignment]
    from_version = serializers.IntegerField(source="from_version.number", default=None, allow_null=True)
    to_version = serializers.IntegerField(source="to_version.number", default=None, allow_null=True)

    class Meta:
        model = ReleaseMove
        fields = ["kind", "slug", "label", "from_version", "to_version"]


class ReleaseSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username")
    moves = ReleaseMoveSerializer(many=True, read_only=True)

    class Meta:
        model = Release
        fields = ["id", "kind", "note", "created_by", "created_at", "reverts", "rolled_back_at", "moves"]


class LabelSerializer(serializers.ModelSerializer):
    class Meta:
        model = Label
        fields = ["name", "description", "created_at"]
        read_only_fields = ["created_at"]
        extra_kwargs: dict[str, Any] = {"name": {"validators": []}}  # uniqueness is the service's answer (409)


class LabelPointerSerializer(serializers.ModelSerializer):
    label = serializers.CharField(source="label.name")  # type: ignore[assignment]
    version = serializers.IntegerField(source="version.number")

    class Meta:
        model = LabelPointer
        fields = ["label", "version", "updated_at"]


class ReviewItemSerializer(ShownDigestMixin, serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by_label")
    decisions = DecisionSerializer(many=True, read_only=True)
    overdue = serializers.BooleanField(read_only=True)

    class Meta:
        model = ReviewItem
        fields = [
            "id",
            "kind",
            "subject_type",
            "subject_id",
            "subject_label",
            "reason",
            "raised_by",
            "risk",
            "requested_by",
            "status",
            "approvals_required",
            "due_at",
            "overdue",
            "created_at",
            "decided_at",
            "digest",
            "payload",
            "decisions",
        ]


class ReviewDiffSerializer(serializers.Serializer):
    label = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.label
    from_ = serializers.IntegerField(allow_null=True, help_text="The version released under the label; null: none.")
    to = serializers.IntegerField()
    changes = serializers.ListField(child=serializers.DictField())

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class ReviewDetailSerializer(ReviewItemSerializer):
    """An item with what is being decided: for configuration reviews the diff and the checks' results."""

    diff = ReviewDiffSerializer(allow_null=True, help_text="Configuration reviews: against the released version.")
    checks = serializers.ListField(child=serializers.DictField())

    class Meta(ReviewItemSerializer.Meta):
        fields = [*ReviewItemSerializer.Meta.fields, "diff", "checks"]


class EvaluateSerializer(serializers.Serializer):
    checkpoint = serializers.ChoiceField(choices=["input", "output", "action"])
    facts = serializers.DictField()
    spec = serializers.DictField(required=False, default=None, help_text="A draft policy to try alone.")
    label = serializers.SlugField(  # type: ignore[assignment]
        default="production", help_text="Else: the policies released under this label."
    )


class DecisionOutputSerializer(serializers.Serializer):
    effect = serializers.CharField()
    matched = serializers.ListField(child=serializers.DictField())
    reasons = serializers.ListField(child=serializers.CharField())
    redact = serializers.ListField(child=serializers.CharField())
    errors = serializers.ListField(child=serializers.CharField())  # type: ignore[assignment]
    facts = serializers.DictField()
    policies = serializers.ListField(child=serializers.DictField())
