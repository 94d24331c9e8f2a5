"""``GET /api/metrics/``: the dashboard's metrics for API clients (definitions in ``console.selectors``)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.services import AGENT_KIND
from config.permissions import has_perms
from console import selectors
from governance.models import GovernedObject
from personas.services import PERSONA_KIND

# Metrics describe runs and conversations: whoever may read both may read them (Viewer and up).
METRICS_PERMISSIONS = ("agents.view_run", "personas.view_conversation")


class MetricsQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=selectors.MAX_DAYS, default=selectors.DEFAULT_DAYS)
    agent = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=GovernedObject.objects.filter(kind=AGENT_KIND),
        required=False,
        help_text="Only this agent's runs (slug).",
    )
    persona = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=GovernedObject.objects.filter(kind=PERSONA_KIND),
        required=False,
        help_text="Only this persona's conversations (slug).",
    )


class FiguresSerializer(serializers.Serializer):
    runs_started = serializers.IntegerField()
    runs_finished = serializers.IntegerField(help_text="Succeeded, failed, cancelled, timed out or rolled back.")
    runs_succeeded = serializers.IntegerField(help_text="Finished with the status succeeded, whatever they achieved.")
    runs_completed = serializers.IntegerField(help_text="Finished runs whose outcome is completed.")
    runs_not_completed = serializers.IntegerField(help_text="Finished runs whose outcome is not_completed.")
    runs_escalated = serializers.IntegerField(help_text="Finished runs whose outcome is escalated.")
    task_completion_rate = serializers.FloatField(
        allow_null=True, help_text="Completed / finished runs (0 to 1): outcomes, not statuses."
    )
    run_escalation_rate = serializers.FloatField(allow_null=True, help_text="Escalated / finished runs (0 to 1).")
    median_run_resolution_seconds = serializers.FloatField(
        allow_null=True, help_text="Median of finished_at - created_at over finished runs."
    )
    conversations_started = serializers.IntegerField()
    conversations_closed = serializers.IntegerField()
    median_conversation_resolution_seconds = serializers.FloatField(
        allow_null=True, help_text="Median of closed_at - created_at over closed conversations."
    )
    user_satisfaction = serializers.FloatField(allow_null=True, help_text="Average rating (1 to 5).")
    ratings = serializers.IntegerField(help_text="How many conversations were rated.")
    policy_violations = serializers.IntegerField()
    policy_violations_in_conversations = serializers.IntegerField(help_text="Messages with a guardrail flag.")
    policy_violations_in_runs = serializers.IntegerField(
        help_text="Guardrail steps, and tool calls an action policy denied or sent for approval."
    )
    user_messages = serializers.IntegerField()
    interactions = serializers.IntegerField(help_text="User messages + runs.")
    policy_violations_per_100_interactions = serializers.FloatField(allow_null=True)
    escalated_conversations = serializers.IntegerField(help_text="Conversations handed to a person.")
    escalation_rate = serializers.FloatField(
        allow_null=True, help_text="Conversations handed to a person / started conversations (0 to 1)."
    )
    cost = serializers.DecimalField(max_digits=18, decimal_places=6, help_text="Sum of the runs' cost.")


class DayFiguresSerializer(FiguresSerializer):
    date = serializers.DateField()


class SubjectFiguresSerializer(FiguresSerializer):
    slug = serializers.SlugField()
    name = serializers.CharField()


class MetricsSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    start = serializers.DateTimeField(help_text="Midnight starting the first day (TIME_ZONE).")
    end = serializers.DateTimeField(help_text="Midnight ending today.")
    agent = serializers.SlugField(allow_null=True)
    persona = serializers.SlugField(allow_null=True)
    totals = FiguresSerializer()
    daily = DayFiguresSerializer(
        many=True, help_text="One entry per day, oldest first; runs and conversations count on the day they started."
    )
    agents = SubjectFiguresSerializer(many=True, help_text="Per agent in scope (the runs' figures).")
    personas = SubjectFiguresSerializer(many=True, help_text="Per persona in scope (the conversations' figures).")


class MetricsView(APIView):
    permission_classes = [has_perms(*METRICS_PERMISSIONS)]

    @extend_schema(parameters=[MetricsQuerySerializer], responses=MetricsSerializer)
    def get(self, request: Request) -> Response:
        """Task completion rate (run outcomes, not statuses), median time to resolution, user satisfaction, policy
        violations per 100 interactions, escalation rates and cost over the last ``days`` days: in total, per day,
        per agent and per persona. ``docs/metrics.md`` defines each figure."""
        query = MetricsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        result = selectors.metrics(
            days=query.validated_data["days"],
            agent=query.validated_data.get("agent"),
            persona=query.validated_data.get("persona"),
        )
        return Response(MetricsSerializer(result).data)
