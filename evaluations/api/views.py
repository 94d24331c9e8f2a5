"""``POST /api/suites/from-production/``: a conversation or a run becomes a scenario of a suite (``services``)."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.models import Run
from config.lookups import object_or_404
from config.permissions import has_perms
from evaluations import services
from governance.api.views import request_user, validated
from personas.models import Conversation


class CaptureSerializer(serializers.Serializer):
    suite = serializers.SlugField(max_length=100, help_text="The suite to add it to; created when there is none.")
    name = serializers.CharField(max_length=200, required=False, default="", help_text="The scenario's name.")
    conversation = serializers.UUIDField(required=False, help_text="A conversation to make a scenario of.")
    run = serializers.UUIDField(required=False, help_text="Or a run.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("conversation" in attrs) == ("run" in attrs):
            raise serializers.ValidationError({"conversation": ["Give a conversation or a run, one of them."]})
        return attrs


class CapturedSerializer(serializers.Serializer):
    suite = serializers.SlugField()
    scenario = serializers.JSONField(help_text="The scenario added to the suite's draft, for an editor to complete.")


class FromProductionView(APIView):
    permission_classes = [has_perms("governance.change_governedobject")]

    @extend_schema(request=CaptureSerializer, responses={201: CapturedSerializer})
    def post(self, request: Request) -> Response:
        """Add a conversation (its user turns) or a run (its input, its tools' results as fixtures, its approvals)
        to a suite's draft as a scenario without expectations: an editor adds them and submits the suite."""
        data = validated(CaptureSerializer, request)
        actor = request_user(request)
        if "conversation" in data:
            conversation = object_or_404(
                Conversation.objects.select_related("persona"),
                "There is no such conversation.",
                pk=data["conversation"],
            )
            scenario = services.scenario_from_conversation(
                actor=actor, suite=data["suite"], conversation=conversation, name=data["name"]
            )
        else:
            run = object_or_404(Run.objects.select_related("agent"), "There is no such run.", pk=data["run"])
            scenario = services.scenario_from_run(actor=actor, suite=data["suite"], run=run, name=data["name"])
        return Response({"suite": data["suite"], "scenario": scenario}, status=status.HTTP_201_CREATED)
