from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, viewsets

from sessions.access import within_clinics
from sessions.api import ClinicScoped, RolePermissions
from sessions.models import Session

from .models import Message, ReminderRule
from .serializers import MessageQuerySerializer, MessageSerializer, ReminderRuleSerializer


class MessageViewSet(viewsets.ReadOnlyModelViewSet):
    """Every planned, sent and withheld message, with its status and the reason."""

    serializer_class = MessageSerializer
    permission_classes = [RolePermissions]
    queryset = Message.objects.all()

    def get_queryset(self) -> QuerySet[Message]:
        messages = within_clinics(Message.objects.order_by("due_at", "id"), self.request.user, path="clinic")
        if self.action != "list":
            return messages
        query = MessageQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return messages.filter(**query.validated_data)

    @extend_schema(parameters=[MessageQuerySerializer])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)


class SessionMessagesView(generics.ListAPIView):
    """GET /api/sessions/{id}/messages: the session's messages, every version of it."""

    serializer_class = MessageSerializer
    permission_classes = [RolePermissions]
    queryset = Message.objects.all()
    pagination_class = None

    def get_queryset(self) -> QuerySet[Message]:
        session = get_object_or_404(within_clinics(Session.objects.all(), self.request.user), pk=self.kwargs["pk"])
        return Message.objects.filter(session=session).order_by("due_at", "id")


class ReminderRuleViewSet(ClinicScoped, viewsets.ModelViewSet):
    serializer_class = ReminderRuleSerializer
    permission_classes = [RolePermissions]
    queryset = ReminderRule.objects.all()
