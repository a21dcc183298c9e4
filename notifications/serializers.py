from rest_framework import serializers

from sessions.serializers import LARGEST_ID, ClinicScopedModelSerializer

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
