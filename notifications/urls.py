from django.urls import path

from . import views

urlpatterns = [
    path("twilio/sms/status/", views.sms_status, name="twilio-sms-status"),
    path("twilio/sms/inbound/", views.sms_inbound, name="twilio-sms-inbound"),
]
