"""Agents, tools, runs and tool approvals over the API. Views translate HTTP to service calls; the services
check permissions and every rule, so the console and the API refuse the same things."""

import uuid

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agents import services, tool_versions
from agents.api import serializers as s
from agents.models import Run, Tool
from config.api_schema import ErrorSerializer
from config.errors import NotFound
from config.lookups import object_or_404
from config.permissions import has_perms
from governance import selectors
from governance.api.serializers import ReviewItemSerializer
from governance.api.views import GovernedViewSet, request_user, validated
from governance.models import GovernedObject, ReviewItem, Version


class AgentViewSet(GovernedViewSet):
    kind = services.AGENT_KIND

    @extend_schema(request=s.RunStartSerializer, responses={202: s.RunSerializer, 200: s.RunSerializer})
    @action(detail=True, methods=["post"], permission_classes=[has_perms("agents.start_run")])
    def runs(self, request: Request, slug: str) -> Response:
        """Start a run (202, enqueued after commit); the same idempotency key returns the same run (200)."""
        data = validated(s.RunStartSerializer, request)
        run, created = services.run_start(actor=request_user(request), agent=slug, **data)
        return Response(s.RunSerializer(run).data, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)


BROKER_DOWN = OpenApiResponse(
    ErrorSerializer, description="The task queue cannot be reached (broker_unavailable): nothing was undone; ask again."
)
LABEL = OpenApiParameter("label", str, description="Show the version released under this label (production).")


class ToolViewSet(viewsets.GenericViewSet):
    """Tools with their definitions as released (governed configuration of kind ``tool``)."""

    queryset = Tool.objects.all()
    serializer_class = s.ToolSerializer
    lookup_field = "name"
    lookup_value_regex = r"[A-Za-z0-9_.\-]+"
    permission_classes = [has_perms("agents.view_tool")]

    def _label(self) -> str:
        return self.request.query_params.get("label") or "production"

    @extend_schema(parameters=[LABEL], responses=s.ToolSerializer(many=True))
    def list(self, request: Request) -> Response:
        """Every tool, with the definition released under ``label``."""
        page = self.paginate_queryset(self.get_queryset()) or []
        shown = tool_versions.shown([tool.name for tool in page], self._label())
        data = [
            {**shown[tool.name], "name": tool.name, "kind": tool.kind, "available": tool.available} for tool in page
        ]
        return self.get_paginated_response(s.ToolSerializer(data, many=True).data)

    @extend_schema(parameters=[LABEL], responses=s.ToolDetailSerializer)
    def retrieve(self, request: Request, name: str) -> Response:
        """One tool: the definition released under ``label`` (an HTTP tool's method and URL among it), and every
        version of its definition."""
        tool = self.get_queryset().filter(name=name).first()
        if tool is None:
            raise NotFound(f"There is no tool {name!r}.")
        versions = Version.objects.filter(object__kind=tool_versions.TOOL_KIND, object__slug=name).order_by("-number")
        shown = tool_versions.shown([name], self._label())[name]
        data = {**shown, "name": name, "kind": tool.kind, "available": tool.available, "versions": versions}
        return Response(s.ToolDetailSerializer(data).data)


class RunFilter(filters.FilterSet):
    agent = filters.ModelChoiceFilter(  # an unknown agent is a 400 naming it, not an empty list
        queryset=GovernedObject.objects.filter(kind=services.AGENT_KIND), to_field_name="slug"
    )
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Run
        fields = ["agent", "status", "outcome", "label"]


class RunViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Runs: a client application sees (and cancels) the runs it started, exactly as it sees its conversations;
    console roles that read runs (Viewer and up) see all."""

    serializer_class = s.RunSerializer
    filterset_class = RunFilter

    def get_queryset(self) -> QuerySet[Run]:
        runs = Run.objects.select_related("agent", "version", "requested_by")
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI schema is generated without a user
            return runs.none()
        user = request_user(self.request)
        return runs if user.has_perm("agents.view_run") else runs.filter(requested_by=user)

    def _run(self, pk: str) -> Run:
        try:
            uuid.UUID(pk)
        except ValueError:
            raise NotFound("There is no such run.") from None
        run = self.get_queryset().filter(pk=pk).first()
        if run is None:
            raise NotFound("There is no such run.")
        return run

    def _detail(self, run: Run, code: int = status.HTTP_200_OK) -> Response:
        run = self.get_queryset().prefetch_related("steps__compensates").get(pk=run.pk)
        return Response(s.RunDetailSerializer(run).data, status=code)

    @extend_schema(responses=s.RunDetailSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        """The run's status and its steps, in order."""
        return self._detail(self._run(pk))

    @extend_schema(request=s.ReasonSerializer, responses=s.RunDetailSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Stop the run: at once when it is queued or waiting for a person, else at its next step boundary."""
        data = validated(s.ReasonSerializer, request)
        return self._detail(services.run_cancel(actor=request_user(request), run=self._run(pk), **data))

    @extend_schema(request=s.CompensateSerializer, responses={202: s.RunDetailSerializer, 503: BROKER_DOWN})
    @action(detail=True, methods=["post"])
    def compensate(self, request: Request, pk: str) -> Response:
        """Undo the run's write steps, newest first, through each tool's compensation (Operators)."""
        data = validated(s.CompensateSerializer, request)
        run = services.run_compensate(actor=request_user(request), run=self._run(pk), **data)
        return self._detail(run, status.HTTP_202_ACCEPTED)


class ApprovalViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """What runs wait for a person about: the review queue's items of kind tool_approval and budget_overrun."""

    serializer_class = ReviewItemSerializer
    permission_classes = [has_perms("governance.view_reviewitem")]
    filterset_fields = ["kind", "status", "risk"]

    def get_queryset(self) -> QuerySet[ReviewItem]:
        return ReviewItem.objects.filter(kind__in=services.RUN_APPROVALS).prefetch_related("decisions")

    def _approval(self, pk: str) -> ReviewItem:
        return object_or_404(self.get_queryset(), "There is no such approval.", pk=pk)

    @extend_schema(responses=s.ApprovalDetailSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        """The approval, with the run's timeline so far; decide with the digest shown here."""
        item = self._approval(pk)
        step = services.approval_step(item)
        data = dict(ReviewItemSerializer(item).data)
        data["digest"] = selectors.review_digest(item)
        data["run"] = s.RunDetailSerializer(Run.objects.prefetch_related("steps").get(pk=step.run_id)).data
        return Response(data)

    @extend_schema(request=s.ApprovalDecideSerializer, responses=ReviewItemSerializer)
    @action(detail=True, methods=["post"], permission_classes=[has_perms("governance.decide_reviewitem")])
    def decide(self, request: Request, pk: str) -> Response:
        """Approve, reject, or approve a tool call with edited arguments (edit). Never your own request; critical
        tools need two approvers; the decision is bound to the digest you were shown."""
        data = validated(s.ApprovalDecideSerializer, request)
        item = services.approval_decide(actor=request_user(request), item=self._approval(pk), **data)
        return Response(ReviewItemSerializer(self.get_queryset().get(pk=item.pk)).data)
