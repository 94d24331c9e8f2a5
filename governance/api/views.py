"""Governed configuration over the API: objects, drafts, versions, reviews, releases, labels, evaluation.

Views only translate HTTP to service calls; permissions on changes and every rule of the lifecycle are
enforced by ``governance.services``, so the console and the API refuse the same things.
"""

from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import QueryDict
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config import signin
from config.api_input import StrictBooleanFilter, json_type_errors
from config.api_schema import ErrorSerializer
from config.errors import DomainError, NotAllowed, NotFound
from config.lookups import object_or_404
from config.permissions import has_perms
from governance import selectors, services
from governance.api import serializers as s
from governance.guardrails import guardrail_dry_run
from governance.models import GovernedObject, Label, Release, ReviewItem, ReviewStatus
from governance.registry import get_kind


class TokenObtainView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        request=AuthTokenSerializer,
        responses={
            200: inline_serializer("Token", {"token": serializers.CharField()}),
            429: OpenApiResponse(ErrorSerializer, description="Too many failed sign-ins: wait for Retry-After."),
        },
    )
    def post(self, request: Request) -> Response:
        """Return the caller's API token (created on first use). Failed attempts are audited and throttled: a
        locked-out username and address get 429 with Retry-After (config.signin)."""
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        if not serializer.is_valid():
            signin.refuse_if_locked(request)
            raise serializers.ValidationError(serializer.errors)
        token = services.api_token_issue(user=serializer.validated_data["user"], ip=request.META.get("REMOTE_ADDR", ""))
        return Response({"token": token.key})


def request_user(request: Request) -> User:
    """The authenticated user behind the request (the view's permission class has made sure of it)."""
    if not isinstance(request.user, User):
        raise NotAllowed("Sign in first.")
    return request.user


def validated(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """The body, validated by ``serializer_class``; in a JSON body, values of the wrong type are errors, not coerced
    (a form's values are all strings)."""
    serializer = serializer_class(data=request.data)
    body = request.data
    if isinstance(body, dict) and not isinstance(body, QueryDict) and (errors := json_type_errors(serializer, body)):
        raise serializers.ValidationError(errors)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class GovernedViewSet(viewsets.GenericViewSet):
    """One governed kind: subclasses set ``kind``. Reads need the view permission; services guard changes."""

    kind: str = ""
    lookup_field = "slug"
    serializer_class = s.GovernedObjectSerializer
    permission_classes = [has_perms("governance.view_governedobject")]

    def get_queryset(self) -> QuerySet[GovernedObject]:
        return GovernedObject.objects.filter(kind=self.kind).prefetch_related(
            "pointers__label", "pointers__version", "versions"
        )

    def _object(self) -> GovernedObject:
        obj = self.get_queryset().filter(slug=self.kwargs["slug"]).first()
        if obj is None:
            raise NotFound(f"There is no {get_kind(self.kind).title} {self.kwargs['slug']!r}.")
        return obj

    def _version(self, obj: GovernedObject, number: str) -> Any:
        return selectors.version_by_ref(obj, number)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.GovernedObjectSerializer(page, many=True).data)

    @extend_schema(request=s.GovernedObjectCreateSerializer, responses={201: s.GovernedObjectSerializer})
    def create(self, request: Request) -> Response:
        """Create an object with its first draft."""
        data = validated(s.GovernedObjectCreateSerializer, request)
        obj = services.governed_object_create(actor=request_user(request), kind=self.kind, **data)
        return Response(s.GovernedObjectSerializer(obj).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, slug: str) -> Response:
        return Response(s.GovernedObjectSerializer(self._object()).data)

    @extend_schema(request=s.GovernedObjectUpdateSerializer, responses=s.GovernedObjectSerializer)
    def partial_update(self, request: Request, slug: str) -> Response:
        """Edit the draft and/or the name."""
        data = validated(s.GovernedObjectUpdateSerializer, request)
        obj = services.draft_update(actor=request_user(request), obj=self._object(), **data)
        return Response(s.GovernedObjectSerializer(self.get_queryset().get(pk=obj.pk)).data)

    @extend_schema(request=s.SubmitSerializer, responses={201: s.VersionSerializer})
    @action(detail=True, methods=["post"])
    def submit(self, request: Request, slug: str) -> Response:
        """Freeze the draft as a new version and put it in the review queue."""
        data = validated(s.SubmitSerializer, request)
        version = services.version_submit(actor=request_user(request), obj=self._object(), **data)
        return Response(s.VersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses=inline_serializer(
            "DraftValidation",
            {
                "valid": serializers.BooleanField(),
                "errors": serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
                "checks": serializers.ListField(child=serializers.DictField()),
            },
        )
    )
    @action(detail=True, methods=["get"])
    def validation(self, request: Request, slug: str) -> Response:
        """What submitting the draft now would say: field errors, else the checks' results. Nothing is saved."""
        return Response(selectors.draft_validation(self._object()))

    @extend_schema(responses=s.VersionSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def versions(self, request: Request, slug: str) -> Response:
        """Every version, newest first."""
        versions = self._object().versions.select_related("author").prefetch_related("reviews__decisions")
        return Response(s.VersionSerializer(versions.order_by("-number"), many=True).data)

    @extend_schema(responses=s.VersionSerializer)
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>[0-9]+)")
    def version(self, request: Request, slug: str, number: str) -> Response:
        return Response(s.VersionSerializer(self._version(self._object(), number)).data)

    def _decide(self, request: Request, number: str, decision: str) -> Response:
        data = validated(s.VersionDecideSerializer, request)
        version = self._version(self._object(), number)
        item = version.reviews.filter(status=ReviewStatus.PENDING).first() or version.reviews.last()
        if item is None:
            raise NotFound(f"{version} has no review.")
        services.review_decide(actor=request_user(request), item=item, decision=decision, **data)
        version.refresh_from_db()
        return Response(s.VersionSerializer(version).data)

    @extend_schema(request=s.VersionDecideSerializer, responses=s.VersionSerializer)
    @action(detail=True, methods=["post"], url_path=r"versions/(?P<number>[0-9]+)/approve")
    def approve(self, request: Request, slug: str, number: str) -> Response:
        """Approve a version (Approvers other than its author)."""
        return self._decide(request, number, "approve")

    @extend_schema(request=s.VersionDecideSerializer, responses=s.VersionSerializer)
    @action(detail=True, methods=["post"], url_path=r"versions/(?P<number>[0-9]+)/reject")
    def reject(self, request: Request, slug: str, number: str) -> Response:
        """Reject a version (Approvers other than its author)."""
        return self._decide(request, number, "reject")

    @extend_schema(
        parameters=[
            OpenApiParameter("from", str, description="Version number or label; default: the version before `to`"),
            OpenApiParameter("to", str, description="Version number or label; default: the latest version"),
        ],
        responses=inline_serializer(
            "Diff",
            {
                "from": serializers.IntegerField(allow_null=True, help_text="Null: against nothing (the first)."),
                "to": serializers.IntegerField(),
                "changes": serializers.ListField(child=serializers.DictField()),
            },
        ),
    )
    @action(detail=True, methods=["get"])
    def diff(self, request: Request, slug: str) -> Response:
        """Field-by-field differences between two versions (line by line for long texts)."""
        obj = self._object()
        to_ref = request.query_params.get("to")
        if to_ref:
            new = self._version(obj, to_ref)
        else:
            new = obj.versions.order_by("-number").first()
            if new is None:
                raise DomainError(f"{obj} has no versions yet.", fields={"to": ["Submit a version first."]})
        from_ref = request.query_params.get("from")
        if from_ref:
            old = self._version(obj, from_ref)
        else:
            old = obj.versions.filter(number__lt=new.number).order_by("-number").first()
        return Response(selectors.versions_diff(old, new))

    @extend_schema(request=s.ObjectRollbackSerializer, responses={201: s.ReleaseSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, slug: str) -> Response:
        """Put a label of this object back on an earlier approved version, with a reason."""
        data = validated(s.ObjectRollbackSerializer, request)
        obj = self._object()
        version = self._version(obj, str(data["version"]))
        release = services.label_rollback(
            actor=request_user(request), obj=obj, label=data["label"], version=version, reason=data["reason"]
        )
        return Response(s.ReleaseSerializer(release).data, status=status.HTTP_201_CREATED)


class ReleaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Release.objects.select_related("created_by").prefetch_related(
        "moves__object", "moves__label", "moves__from_version", "moves__to_version"
    )
    serializer_class = s.ReleaseSerializer
    permission_classes = [has_perms("governance.view_release")]

    @extend_schema(request=s.ReleaseCreateSerializer, responses={201: s.ReleaseSerializer})
    def create(self, request: Request) -> Response:
        """Move one or more labels at once, atomically, with a note."""
        data = validated(s.ReleaseCreateSerializer, request)
        moves = []
        for index, move in enumerate(data["moves"]):
            try:
                get_kind(move["kind"])
            except NotFound as error:  # named in the body: a field error, not a missing page
                raise DomainError(error.message, fields={f"moves[{index}].kind": [error.message]}) from None
            obj = GovernedObject.objects.filter(kind=move["kind"], slug=move["slug"]).first()
            if obj is None:
                raise DomainError(
                    "No such object.", fields={f"moves[{index}].slug": [f"No {move['kind']} {move['slug']!r}."]}
                )
            version = obj.versions.filter(number=move["version"]).first()
            if version is None:
                raise DomainError(
                    "No such version.", fields={f"moves[{index}].version": [f"{obj} has no v{move['version']}."]}
                )
            moves.append(services.Move(object=obj, label=move["label"], version=version))
        release = services.release_create(actor=request_user(request), note=data["note"], moves=moves)
        return Response(
            s.ReleaseSerializer(self.get_queryset().get(pk=release.pk)).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(request=s.ReleaseRollbackSerializer, responses={201: s.ReleaseSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk: str) -> Response:
        """Move every label of this release back to where it was before, in one step."""
        data = validated(s.ReleaseRollbackSerializer, request)
        rollback = services.release_rollback(
            actor=request_user(request), release=self.get_object(), reason=data["reason"]
        )
        return Response(
            s.ReleaseSerializer(self.get_queryset().get(pk=rollback.pk)).data, status=status.HTTP_201_CREATED
        )


class LabelViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    queryset = Label.objects.all()
    serializer_class = s.LabelSerializer
    permission_classes = [has_perms("governance.view_label")]
    pagination_class = None

    def create(self, request: Request) -> Response:
        """Add a release label (Admins)."""
        data = validated(s.LabelSerializer, request)
        label = services.label_create(
            actor=request_user(request), name=data["name"], description=data.get("description", "")
        )
        return Response(s.LabelSerializer(label).data, status=status.HTTP_201_CREATED)


class ReviewFilter(filters.FilterSet):
    overdue = StrictBooleanFilter(method="filter_overdue", label="Only items past their due time")

    class Meta:
        model = ReviewItem
        fields = ["kind", "status", "risk"]

    def filter_overdue(self, queryset: QuerySet[ReviewItem], name: str, value: bool) -> QuerySet[ReviewItem]:
        from django.utils import timezone

        overdue = {"status": ReviewStatus.PENDING, "due_at__lt": timezone.now()}
        return queryset.filter(**overdue) if value else queryset.exclude(**overdue)


class ReviewViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The review queue: everything a person must decide."""

    queryset = ReviewItem.objects.prefetch_related("decisions").select_related("version")
    serializer_class = s.ReviewItemSerializer
    permission_classes = [has_perms("governance.view_reviewitem")]
    filterset_class = ReviewFilter

    @extend_schema(responses=s.ReviewDetailSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        """The item, what is being decided, and for configuration reviews the diff and check results."""
        item = object_or_404(self.get_queryset(), "There is no such review item.", pk=pk)
        data = dict(s.ReviewItemSerializer(item).data)
        data["diff"] = selectors.review_diff(item)
        data["checks"] = item.version.checks if item.version else []
        return Response(data)

    @extend_schema(request=s.ReviewDecideSerializer, responses=s.ReviewItemSerializer)
    @action(detail=True, methods=["post"])
    def decide(self, request: Request, pk: str) -> Response:
        """Approve or reject, bound to the digest you were shown."""
        data = validated(s.ReviewDecideSerializer, request)
        item = object_or_404(self.get_queryset(), "There is no such review item.", pk=pk)
        item = services.review_decide(actor=request_user(request), item=item, **data)
        return Response(s.ReviewItemSerializer(self.get_queryset().get(pk=item.pk)).data)


class PolicyEvaluateView(APIView):
    permission_classes = [has_perms("governance.view_governedobject")]

    @extend_schema(request=s.EvaluateSerializer, responses=s.DecisionOutputSerializer)
    def post(self, request: Request) -> Response:
        """Dry run: facts in, decision out. Evaluates ``spec`` (a draft) alone, or the policies under ``label``.

        Text in ``facts.text`` is run through the built-in detectors first. Nothing is recorded.
        """
        data = validated(s.EvaluateSerializer, request)
        return Response(guardrail_dry_run(**data))
