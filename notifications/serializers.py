from rest_framework import serializers

from sessions.models import Offer, Session, WaitlistEntry
from sessions.serializers import LARGEST_ID, ClinicScopedField, ClinicScopedModelSerializer

from .models import Message, ReminderRule


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = [
            "id", "clinic", "session", "offer", "recall", "patient", "purpose", "channel", "session_version", "due_at",
            "expires_at", "status",
            "reason", "attempts", "recipient", "body_redacted", "provider_id", "provider_error", "sent_at",
            "delivered_at", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class ReminderRuleSerializer(ClinicScopedModelSerializer):
    class Meta:
        model = ReminderRule
        fields = ["id", "clinic", "protocol", "channel", "offset_minutes", "is_active"]

    def validate(self, attrs: dict) -> dict:
        clinic = attrs.get("clinic", getattr(self.instance, "clinic", None))
        protocol = attrs.get("protocol", getattr(self.instance, "protocol", None))
        if protocol is not None and clinic is not None and protocol.clinic_id != clinic.pk:
            raise serializers.ValidationError({"protocol": "That protocol belongs to another clinic."})
        return attrs


class MessageQuerySerializer(serializers.Serializer):
    session = serializers.IntegerField(required=False, min_value=1, max_value=LARGEST_ID)
    patient = serializers.IntegerField(required=False, min_value=1, max_value=LARGEST_ID)
    status = serializers.ChoiceField(choices=Message.Status.choices, required=False)


class OfferSerializer(serializers.ModelSerializer):
    """A freed time (`starts_at`, on `chair` or any free one) offered to a waiting patient by text
    and email; `status`: offered, accepted, declined, expired, taken (another patient booked it or
    the time went), unreached. `freed_by`: the cancelled or moved session that freed it."""

    starts_at = serializers.DateTimeField(source="opening.starts_at", read_only=True)
    chair = serializers.IntegerField(source="opening.chair_id", read_only=True, allow_null=True)
    freed_by = serializers.IntegerField(source="opening.freed_by_id", read_only=True, allow_null=True)

    class Meta:
        model = Offer
        fields = [
            "id", "clinic", "entry", "patient", "starts_at", "chair", "freed_by", "status", "expires_at", "created_at",
            "created_by", "closed_at",
        ]  # fmt: skip
        read_only_fields = fields


class OfferCreateSerializer(serializers.Serializer):
    entry = ClinicScopedField(queryset=WaitlistEntry.objects.select_related("patient", "protocol", "clinic"))
    session = ClinicScopedField(
        queryset=Session.objects.select_related("clinic", "chair"),
        help_text="A cancelled session still to come: its freed chair time is what is offered.",
    )


class OfferQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Offer.Status.choices, required=False)
    session = serializers.IntegerField(
        required=False, min_value=1, max_value=LARGEST_ID, help_text="Offers of the time this session freed."
    )
