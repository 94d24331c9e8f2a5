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


class VerificationCheckSerializer(serializers.Serializer):
    check = serializers.CharField()
    ok = serializers.BooleanField()
    detail = serializers.CharField()


class VerificationSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    events_checked = serializers.IntegerField()
    checkpoints_checked = serializers.IntegerField()
    external_checkpoints_read = serializers.IntegerField()
    external_checkpoints = serializers.CharField(allow_null=True, help_text="the file of external checkpoints read")
    last_sequence = serializers.IntegerField()
    last_hash = serializers.CharField()
    first_broken_sequence = serializers.IntegerField(allow_null=True)
    problems = serializers.ListField(child=serializers.CharField())
    checks = VerificationCheckSerializer(many=True)
    seconds = serializers.FloatField()
