from datetime import UTC, datetime

import pytest
from django.test import TestCase
from twilio.request_validator import RequestValidator

from notifications import sending
from notifications.models import Message, Purpose, StaffFlag
from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db
Status = Message.Status
MORNING = datetime(2026, 1, 5, 17, tzinfo=UTC)


@pytest.fixture
def sent_text(settings, twilio):
    settings.PUBLIC_BASE_URL = "https://go.example.com"
    clinic = clinic_make()
    patient = patient_make(clinic, phone="+16025550142", email="")
    series_book(
        patient=patient, protocol=protocol_make(clinic, kind="booster"), starts=[datetime(2026, 1, 9, 13)], now=MORNING
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        ids = sending.messages_claim_due(now=MORNING, limit=10)
    for pk in ids:
        sending.message_send(message_id=pk, now=MORNING)
    message = Message.objects.get(purpose=Purpose.BOOKED)
    assert message.status == Status.SENT
    return message


def post_callback(client, twilio, message, status, *, signature=None, **extra):
    callback = twilio.status_callback(message.provider_id, status)
    params = {**callback.params, **extra}
    url = callback.url.removeprefix("https://go.example.com")
    if signature is None:
        signature = RequestValidator(twilio.auth_token).compute_signature(callback.url, params)
    return client.post(url, params, HTTP_X_TWILIO_SIGNATURE=signature)


def test_a_signed_callback_moves_sent_to_delivered(client, twilio, sent_text):
    answer = post_callback(client, twilio, sent_text, "delivered")

    assert answer.status_code == 200
    sent_text.refresh_from_db()
    assert sent_text.status == Status.DELIVERED and sent_text.delivered_at is not None


def test_a_replayed_or_late_sent_after_delivered_changes_nothing(client, twilio, sent_text):
    post_callback(client, twilio, sent_text, "delivered")
    post_callback(client, twilio, sent_text, "delivered")
    post_callback(client, twilio, sent_text, "sent")

    sent_text.refresh_from_db()
    assert sent_text.status == Status.DELIVERED


@pytest.mark.parametrize("signature", ["", "not-a-signature", "wrong"])
def test_a_bad_or_missing_signature_is_refused_without_a_write(client, twilio, sent_text, signature):
    if signature == "wrong":
        signature = RequestValidator("another-token").compute_signature("https://go.example.com/x", {})
    before = Message.objects.values().get(pk=sent_text.pk)

    answer = post_callback(client, twilio, sent_text, "delivered", signature=signature)

    assert answer.status_code == 403
    assert Message.objects.values().get(pk=sent_text.pk) == before


def test_a_tampered_parameter_is_refused(client, twilio, sent_text):
    callback = twilio.status_callback(sent_text.provider_id, "delivered")
    params = {**callback.params, "MessageStatus": "failed"}

    answer = client.post(
        callback.url.removeprefix("https://go.example.com"), params, HTTP_X_TWILIO_SIGNATURE=callback.signature
    )

    assert answer.status_code == 403
    sent_text.refresh_from_db()
    assert sent_text.status == Status.SENT


def test_an_unknown_sid_gets_200_and_writes_nothing(client, twilio, sent_text, settings):
    url = "https://go.example.com/twilio/sms/status/"
    params = {"MessageSid": "SM" + "f" * 32, "MessageStatus": "delivered"}
    signature = RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(url, params)

    answer = client.post("/twilio/sms/status/", params, HTTP_X_TWILIO_SIGNATURE=signature)

    assert answer.status_code == 200
    sent_text.refresh_from_db()
    assert sent_text.status == Status.SENT


def test_undelivered_raises_a_staff_flag(client, twilio, sent_text):
    post_callback(client, twilio, sent_text, "undelivered")

    sent_text.refresh_from_db()
    assert sent_text.status == Status.UNDELIVERED
    assert StaffFlag.objects.get().kind == StaffFlag.Kind.DELIVERY_FAILED


def test_a_callback_that_overtakes_the_worker_still_lands(client, twilio, sent_text):
    Message.objects.filter(pk=sent_text.pk).update(status=Status.SENDING, provider_id=None)

    post_callback(client, twilio, Message(pk=sent_text.pk, provider_id=sent_text.provider_id), "delivered")

    sent_text.refresh_from_db()
    assert sent_text.status == Status.DELIVERED
