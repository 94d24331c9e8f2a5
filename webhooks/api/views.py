"""Webhook endpoints over the API: a client registers, lists, pauses and removes its own, lists their deliveries
and replays one. Admins may act on anyone's (``webhooks.manage_webhookendpoint``, ``replay_webhookdelivery``)."""

import uuid

from django.contrib.auth.models import User
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.errors import DomainError, NotFound
from governance.api.views import request_user, validated
from webhooks import selectors, services
from webhooks.api import serializers as s
from webhooks.models import WebhookDelivery, WebhookEndpoint

DELIVERY_ID = OpenApiParameter("delivery_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class WebhookEndpointViewSet(viewsets.GenericViewSet):
    serializer_class = s.EndpointSerializer

    def get_queryset(self) -> QuerySet[WebhookEndpoint]:
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI schema is being generated: no user
            return WebhookEndpoint.objects.none()
        return selectors.endpoints_visible_to(request_user(self.request))

    def _endpoint(self, pk: str) -> WebhookEndpoint:
        endpoint = self.get_queryset().filter(pk=pk).first() if pk.isdigit() else None
        if endpoint is None:
            raise NotFound("There is no such webhook endpoint.")
        return endpoint

    def _delivery(self, endpoint: WebhookEndpoint, delivery_id: str) -> WebhookDelivery:
        try:
            uuid.UUID(delivery_id)
        except ValueError:
            raise NotFound("There is no such delivery.") from None
        delivery = endpoint.deliveries.filter(pk=delivery_id).first()
        if delivery is None:
            raise NotFound("There is no such delivery.")
        return delivery

    def list(self, request: Request) -> Response:
        """Your endpoints (never their secrets)."""
        endpoints = self.get_queryset().filter(owner=request_user(request))
        page = self.paginate_queryset(endpoints)
        return self.get_paginated_response(s.EndpointSerializer(page, many=True).data)

    @extend_schema(request=s.EndpointCreateSerializer, responses={201: s.EndpointCreatedSerializer})
    def create(self, request: Request) -> Response:
        """Register an endpoint. The answer holds its signing secret: the only time it is shown."""
        data = validated(s.EndpointCreateSerializer, request)
        owner = None
        if "owner" in data:
            owner = User.objects.filter(username=data.pop("owner")).first()
            if owner is None:
                raise DomainError("The webhook endpoint is not valid.", fields={"owner": ["There is no such user."]})
        endpoint, secret = services.endpoint_create(actor=request_user(request), owner=owner, **data)
        body = dict(s.EndpointSerializer(endpoint).data, secret=secret)
        return Response(body, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(s.EndpointSerializer(self._endpoint(pk)).data)

    @extend_schema(request=s.EndpointUpdateSerializer, responses=s.EndpointSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        """Pause or resume the endpoint (``active``)."""
        data = validated(s.EndpointUpdateSerializer, request)
        endpoint = services.endpoint_set_active(actor=request_user(request), endpoint=self._endpoint(pk), **data)
        return Response(s.EndpointSerializer(self.get_queryset().get(pk=endpoint.pk)).data)

    def destroy(self, request: Request, pk: str) -> Response:
        """Remove the endpoint and its deliveries."""
        services.endpoint_delete(actor=request_user(request), endpoint=self._endpoint(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=s.DeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str) -> Response:
        """The endpoint's deliveries, newest first, with the last answer of each."""
        page = self.paginate_queryset(self._endpoint(pk).deliveries.all())
        return self.get_paginated_response(s.DeliverySerializer(page, many=True).data)

    @extend_schema(parameters=[DELIVERY_ID], responses=s.DeliverySerializer)
    @action(detail=True, methods=["get"], url_path=r"deliveries/(?P<delivery_id>[^/.]+)")
    def delivery(self, request: Request, pk: str, delivery_id: str) -> Response:
        return Response(s.DeliverySerializer(self._delivery(self._endpoint(pk), delivery_id)).data)

    @extend_schema(parameters=[DELIVERY_ID], request=None, responses={202: s.DeliverySerializer})
    @action(detail=True, methods=["post"], url_path=r"deliveries/(?P<delivery_id>[^/.]+)/replay")
    def replay(self, request: Request, pk: str, delivery_id: str) -> Response:
        """Send the delivery once more, now (one attempt, after commit)."""
        delivery = self._delivery(self._endpoint(pk), delivery_id)
        delivery = services.delivery_replay(actor=request_user(request), delivery=delivery)
        return Response(s.DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
