"""Serializers for webhook endpoints and deliveries: input per use case, output per resource."""

from rest_framework import serializers

from webhooks.models import URL_MAX_LENGTH, WebhookDelivery, WebhookEndpoint, WebhookEvent


class EndpointCreateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=URL_MAX_LENGTH, help_text="Where deliveries are POSTed: an http(s) URL.")
    events = serializers.ListField(
        child=serializers.CharField(max_length=40), help_text=f"Any of: {', '.join(WebhookEvent.values)}."
    )
    allow_private = serializers.BooleanField(
        default=False, help_text="Deliver to private and loopback addresses too (Admins only)."
    )
    owner = serializers.CharField(
        required=False, max_length=150, help_text="Whose endpoint it is (a username): Admins only; you by default."
    )


class EndpointUpdateSerializer(serializers.Serializer):
    active = serializers.BooleanField(help_text="False pauses it: no new deliveries; pending ones fail.")


class EndpointSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username")

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "events", "allow_private", "active", "owner", "created_at"]


class EndpointCreatedSerializer(EndpointSerializer):
    secret = serializers.CharField(help_text="Signs every delivery. Shown this once: keep it now.")

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event",
            "status",
            "attempts",
            "last_response_status",
            "last_response_body",
            "last_error",
            "next_attempt_at",
            "replayed_at",
            "created_at",
            "delivered_at",
            "payload",
        ]
