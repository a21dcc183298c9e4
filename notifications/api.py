from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from sessions.access import within_clinics
from sessions.api import CONFLICT, ClinicScoped, RolePermissions
from sessions.models import Offer, Session
from sessions.waitlist import opening_of

from . import offers
from .models import Message, ReminderRule
from .serializers import (
    MessageQuerySerializer,
    MessageSerializer,
    OfferCreateSerializer,
    OfferQuerySerializer,
    OfferSerializer,
    ReminderRuleSerializer,
)


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


class OfferViewSet(ClinicScoped, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = OfferSerializer
    permission_classes = [RolePermissions]
    queryset = Offer.objects.select_related("opening").order_by("-created_at", "-id")

    def get_queryset(self) -> QuerySet[Offer]:
        found = super().get_queryset()
        if self.action != "list":
            return found
        query = OfferQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data
        if "status" in wanted:
            found = found.filter(status=wanted["status"])
        if "session" in wanted:
            found = found.filter(opening__freed_by_id=wanted["session"])
        return found

    @extend_schema(parameters=[OfferQuerySerializer])
    def list(self, request, *args, **kwargs):
        """Offers of freed chair time, newest first: the tick's and staff's."""
        return super().list(request, *args, **kwargs)

    @extend_schema(request=OfferCreateSerializer, responses={201: OfferSerializer, 409: CONFLICT})
    def create(self, request: Request) -> Response:
        """Offer a cancelled session's chair time to one waiting patient by text (and email), as
        the tick would; 409 `offer_not_made` saying why where it cannot be made."""
        form = OfferCreateSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        opening = opening_of(session=form.validated_data["session"])
        if opening is None:
            raise ValidationError({"session": "Only a cancelled session still to come frees a time to offer."})
        offer = offers.offer_by_hand(opening=opening, entry=form.validated_data["entry"], actor=request.user)
        return Response(OfferSerializer(offer).data, status=status.HTTP_201_CREATED)
