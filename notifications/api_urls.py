from django.urls import re_path
from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter()
router.trailing_slash = "/?"
router.include_root_view = False
router.register("messages", api.MessageViewSet, basename="message")
router.register("reminder-rules", api.ReminderRuleViewSet)
router.register("offers", api.OfferViewSet)

urlpatterns = [
    re_path(r"^sessions/(?P<pk>\d+)/messages/?$", api.SessionMessagesView.as_view(), name="session-messages"),
    *router.urls,
]
