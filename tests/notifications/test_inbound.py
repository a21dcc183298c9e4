"""Patients' replies by text, through the signed webhook."""

import re
import threading
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from django.db import connection
from django.test import Client
from twilio.request_validator import RequestValidator

from notifications import links
from notifications.models import InboundSms, InboxText, Message, StaffFlag
from sessions.models import AuditEvent, Patient, Session
from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db

PUBLIC = "https://go.example.com"
URL = f"{PUBLIC}/twilio/sms/inbound/"
PHONE = "+16025550142"
_sids = count(1)


@pytest.fixture(autouse=True)
def _public_url(settings, twilio):
    settings.PUBLIC_BASE_URL = PUBLIC


@pytest.fixture
def series(db):
    clinic = clinic_make(sender_name="Desert Bloom")
    patient = patient_make(clinic, phone=PHONE)
    start = (datetime.now(UTC) + timedelta(days=3)).astimezone(clinic.zone).replace(hour=10, minute=0, tzinfo=None)
    return series_book(patient=patient, protocol=protocol_make(clinic, kind="induction"), first_start=start)


def text(client, body: str, *, sid: str | None = None, sender: str = PHONE, url: str = URL, sign=True, **changes):
    params = {"MessageSid": sid or f"SM{next(_sids):032d}", "From": sender, "To": "+16025550199", "Body": body}
    signature = RequestValidator(twilio_token()).compute_signature(url, params) if sign else None
    params.update(changes)
    headers = {"HTTP_X_TWILIO_SIGNATURE": signature} if signature else {}
    return client.post("/twilio/sms/inbound/", params, **headers)


def twilio_token() -> str:
    from django.conf import settings

    return settings.TWILIO_AUTH_TOKEN


def reply_of(answer) -> str:
    found = re.search(r"<Message>(.*)</Message>", answer.content.decode())
    return found.group(1) if found else ""


def test_a_signed_c_confirms_the_next_session_and_answers_with_twiml(client, series):
    answer = text(client, "c")

    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("application/xml")
    first = series.sessions.get(number=1)
    assert (first.status, first.confirmed_via) == ("confirmed", "sms")
    assert series.sessions.filter(status="confirmed").count() == 1
    assert reply_of(answer).startswith("Desert Bloom: thank you, your visit")
    assert AuditEvent.objects.filter(action="confirmed", via="sms").count() == 1


def test_a_replayed_text_confirms_once_and_answers_once(client, series):
    answers = [text(client, "C", sid="SM" + "a" * 32) for _ in range(3)]

    assert [bool(reply_of(a)) for a in answers] == [True, False, False]
    assert all(a.status_code == 200 for a in answers)
    assert InboundSms.objects.count() == 1
    assert AuditEvent.objects.filter(action="confirmed").count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs separate PostgreSQL connections")
def test_a_text_replayed_concurrently_confirms_once(series):
    gate = threading.Barrier(3)
    replies: list[str] = []

    def replay() -> None:
        try:
            gate.wait()
            replies.append(reply_of(text(Client(), "1", sid="SM" + "b" * 32)))
        finally:
            connection.close()

    threads = [threading.Thread(target=replay) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert sorted(bool(r) for r in replies) == [False, False, True]
    assert AuditEvent.objects.filter(action="confirmed").count() == 1


@pytest.mark.parametrize(
    "forge",
    [
        {"Body": "STOP"},  # a parameter changed after signing
        {"url": "http://go.example.com/twilio/sms/inbound/"},  # signed for plain http
        {"sign": False},  # no signature at all
    ],
)
def test_an_unsigned_or_tampered_text_is_refused_and_writes_nothing(client, series, forge):
    answer = text(client, "C", **forge)

    assert answer.status_code == 403
    assert InboundSms.objects.count() == 0
    assert not series.sessions.filter(status="confirmed").exists()


@pytest.mark.parametrize(
    "body",
    ["STOP", "stopall", "Unsubscribe", "END", "quit", "CANCEL", "revoke", "OPTOUT", "stop texting me",
     "Stop. Thank you", "please unsubscribe", "Stop!"],
)  # fmt: skip
def test_opt_out_words_stop_every_text_still_to_come(client, series, body):
    answer = text(client, body)

    patient = Patient.objects.get(phone=PHONE)
    assert patient.sms_opted_out_at is not None
    assert "no more texts" in reply_of(answer)
    pending_texts = Message.objects.filter(patient=patient, channel="sms", status__in=Message.PENDING)
    assert not pending_texts.exists()
    assert Message.objects.filter(patient=patient, channel="email", status="planned").exists()  # email goes on


def test_a_reminder_due_after_stop_is_not_sent(client, series, twilio):
    from tests.notifications.test_send import tick_and_send

    text(client, "STOP")
    reminder = Message.objects.filter(patient__phone=PHONE, channel="sms", purpose="reminder").first()
    # Even a text that was somehow planned again is stopped at send time.
    Message.objects.filter(pk=reminder.pk).update(status="planned", reason="", due_at=datetime.now(UTC))

    outcomes = tick_and_send(datetime.now(UTC) + timedelta(minutes=1))

    reminder.refresh_from_db()
    assert "skipped" in outcomes
    assert (reminder.status, reminder.reason) == ("skipped", "patient opted out of texts")
    assert twilio.messages == []


def test_start_opts_back_in(client, series):
    text(client, "STOP")

    answer = text(client, "Start")

    assert Patient.objects.get(phone=PHONE).sms_opted_out_at is None
    assert "texts are back on" in reply_of(answer)


def test_opting_out_and_back_in_is_audited_once_each(client, series):
    text(client, "STOP")
    text(client, "Start")

    patient = Patient.objects.get(phone=PHONE)
    trail = AuditEvent.objects.filter(patient=patient).exclude(action__in=["created", "booked"])
    assert list(trail.order_by("id").values_list("action", "via")) == [("opted_out", "sms"), ("opted_in", "sms")]


def test_cancel_stops_texts_flags_staff_and_keeps_the_appointment(client, series):
    text(client, "Cancel")

    flag = StaffFlag.objects.get(kind=StaffFlag.Kind.CANCEL_WORD)
    assert flag.session == series.sessions.get(number=1)
    assert not series.sessions.filter(status="cancelled").exists()
    assert InboxText.objects.get().needs_staff is True


def test_a_shared_phone_never_confirms_the_wrong_patient(client, series):
    clinic = series.clinic
    sibling = patient_make(clinic, phone=PHONE, first_name="Sam")
    start = series.sessions.get(number=1).starts_at + timedelta(hours=3)
    series_book(patient=sibling, protocol=clinic.protocols.get(), starts=None, first_start=start)

    answer = text(client, "C")

    assert not Session.objects.filter(status="confirmed").exists()
    found = re.findall(r"/r/([\w-]+)", reply_of(answer))
    assert {links.link_session(token=t).patient_id for t in found} == {series.patient_id, sibling.pk}


def test_help_names_the_clinic_and_its_phone(client, series):
    reply = reply_of(text(client, "help"))

    assert reply.startswith("Desert Bloom: call us at +16025550100.")


def test_r_answers_with_a_link_to_the_next_session(client, series):
    reply = reply_of(text(client, "R"))

    [token] = re.findall(r"/r/([\w-]+)", reply)
    assert links.link_session(token=token) == series.sessions.get(number=1)


def test_other_words_go_to_the_inbox_with_one_acknowledgement_a_day(client, series):
    first = text(client, "Can I bring my sister?")
    second = text(client, "Also, where do I park?")

    assert "we have your message" in reply_of(first)
    assert reply_of(second) == ""
    assert InboxText.objects.filter(needs_staff=True).count() == 2


def test_an_unknown_number_gets_a_neutral_answer(client, series):
    reply = reply_of(text(client, "C", sender="+16025550177"))

    assert reply == "We could not match this number to a booking. Please call your clinic."
    assert not Session.objects.filter(status="confirmed").exists()


def test_a_text_with_a_nul_byte_is_stored_and_acted_on(client, series):
    answer = text(client, "C\x00")

    assert answer.status_code == 200
    assert InboundSms.objects.get().body == "C\ufffd"
    assert series.sessions.get(number=1).status == "confirmed"
