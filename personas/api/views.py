"""Conversations with personas over the API. A client sees only its own conversations."""

import uuid

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.api_input import IDEMPOTENCY_KEY_HEADER, MAX_IDEMPOTENCY_KEY, idempotency_key
from config.errors import DomainError, NotFound
from governance.api.views import GovernedViewSet, request_user, validated
from personas import services
from personas.api import serializers as s
from personas.models import Conversation

IDEMPOTENCY_KEY = OpenApiParameter(
    IDEMPOTENCY_KEY_HEADER,
    str,
    OpenApiParameter.HEADER,
    description=f"At most {MAX_IDEMPOTENCY_KEY} printable ASCII characters, one per message of this conversation: "
    "sending the same key with the same text again (a retry after a lost answer) is answered 200 with the first "
    "answer, and nothing is stored; with another text it is refused (409, idempotency_key_reused).",
)
REPLAYED = OpenApiResponse(s.TurnSerializer, description="The same Idempotency-Key and text again: the first answer.")


class PersonaViewSet(GovernedViewSet):
    kind = services.PERSONA_KIND


class StyleGuideViewSet(GovernedViewSet):
    kind = services.STYLE_GUIDE_KIND


class ConversationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = s.ConversationSummarySerializer

    def get_queryset(self) -> QuerySet[Conversation]:
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI schema is generated without a user
            return Conversation.objects.none()
        return Conversation.objects.filter(client=request_user(self.request)).select_related("persona", "version")

    def _conversation(self, pk: str) -> Conversation:
        conversation = self.get_queryset().filter(pk=pk).first() if _is_uuid(pk) else None
        if conversation is None:
            raise NotFound("There is no such conversation of yours.")
        return conversation

    def _full(self, conversation: Conversation) -> Response:
        conversation = (
            Conversation.objects.select_related("persona", "version")
            .prefetch_related("messages__author")
            .get(pk=conversation.pk)
        )
        return Response(s.ConversationSerializer(conversation).data)

    @extend_schema(request=s.ConversationStartSerializer, responses={201: s.ConversationSerializer})
    def create(self, request: Request) -> Response:
        """Start a conversation with the persona version released under ``label``; the answer holds the greeting."""
        data = validated(s.ConversationStartSerializer, request)
        try:
            conversation = services.conversation_start(client=request_user(request), **data)
        except NotFound as error:  # the persona is named in the body: an unknown one is a field error
            raise DomainError(error.message, fields={"persona": [error.message]}) from None
        response = self._full(conversation)
        response.status_code = status.HTTP_201_CREATED
        return response

    @extend_schema(responses=s.ConversationSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        """The transcript (as stored) and the status."""
        return self._full(self._conversation(pk))

    @extend_schema(
        request=s.MessageInSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: s.TurnSerializer, 200: REPLAYED},
    )
    @action(detail=True, methods=["post"])
    def messages(self, request: Request, pk: str) -> Response:
        """Send the user's message; the answer holds the persona's replies and the conversation's status. With an
        ``Idempotency-Key`` sent before for the same text, the first answer again (200) and nothing stored."""
        data = validated(s.MessageInSerializer, request)
        key = idempotency_key(request)
        if not _is_uuid(pk):
            raise NotFound("There is no such conversation of yours.")
        # The service finds the conversation among the client's own, under its lock: one read, not two.
        conversation = Conversation(pk=pk)
        answer = services.conversation_message(
            client=request_user(request), conversation=conversation, idempotency_key=key, **data
        )
        user, *replies = answer.messages
        body = {
            "conversation": user.conversation_id,
            "status": answer.status,  # the conversation as the turn left it
            "message": s.MessageSerializer(user).data,
            "replies": s.MessageSerializer(replies, many=True).data,
        }
        return Response(body, status=status.HTTP_200_OK if answer.replayed else status.HTTP_201_CREATED)

    @extend_schema(request=s.CloseSerializer, responses=s.ConversationSerializer)
    @action(detail=True, methods=["post"])
    def close(self, request: Request, pk: str) -> Response:
        """Close the conversation, with an optional rating (1 to 5) and comment."""
        data = validated(s.CloseSerializer, request)
        conversation = services.conversation_close(
            actor=request_user(request), conversation=self._conversation(pk), **data
        )
        return self._full(conversation)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
