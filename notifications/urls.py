from django.urls import path

from . import patient_views, views

urlpatterns = [
    path("twilio/sms/status/", views.sms_status, name="twilio-sms-status"),
    path("twilio/sms/inbound/", views.sms_inbound, name="twilio-sms-inbound"),
    path("r/<str:token>", patient_views.patient_link, name="patient-link"),
]
