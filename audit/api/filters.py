import django_filters

from audit.models import AuditEvent


class AuditEventFilter(django_filters.FilterSet):
    action_prefix = django_filters.CharFilter(field_name="action", lookup_expr="startswith", label="Action starts with")
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    sequence_after = django_filters.NumberFilter(field_name="sequence", lookup_expr="gt")

    class Meta:
        model = AuditEvent
        fields = ["actor_type", "actor_id", "actor_label", "action", "target_type", "target_id", "correlation_id"]
