from rest_framework import serializers

from audit.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    details = serializers.JSONField(read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "sequence",
            "created_at",
            "actor_type",
            "actor_id",
            "actor_label",
            "action",
            "target_type",
            "target_id",
            "target_label",
            "details",
            "details_digest",
            "redacted_at",
            "correlation_id",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields


class VerificationSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    events_checked = serializers.IntegerField()
    checkpoints_checked = serializers.IntegerField()
    last_sequence = serializers.IntegerField()
    last_hash = serializers.CharField()
    first_broken_sequence = serializers.IntegerField(allow_null=True)
    problems = serializers.ListField(child=serializers.CharField())
    seconds = serializers.FloatField()
