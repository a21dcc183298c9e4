"""No text may reveal the treatment, and every text fits one GSM-7 segment."""

from datetime import datetime

import pytest

from notifications.models import CANCELLATIONS, Channel, Message, Purpose
from notifications.rendering import render
from notifications.wording import (
    clinical_words_in,
    default_wording,
    fits_one_segment,
    gsm7_safe,
    is_gsm7,
    placeholders_in,
)
from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db

FORBIDDEN = ("ketamine", "infusion", "depression", "pain")
TOKEN = "Ab3dEf6hIj9k"


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("purpose", [p.value for p in Purpose])
@pytest.mark.parametrize("channel", [Channel.SMS, Channel.EMAIL])
def test_built_in_wording_uses_only_known_placeholders_and_no_clinical_words(purpose, channel, language):
    wording = default_wording(purpose, channel, language)

    assert placeholders_in(wording.body) <= {
        "clinic",
        "date",
        "time",
        "link",
        "phone",
        "number",
        "count",
        "address",
        "visit",
        "schedule",
    }
    assert clinical_words_in(wording.subject + wording.body) == []


@pytest.mark.parametrize("language", ["en", "es"])
# An offer's and a recall's texts, which name no session: tests/notifications/test_offers.py.
@pytest.mark.parametrize("purpose", [p.value for p in Purpose if p not in (Purpose.OFFER, Purpose.RECALL)])
def test_every_text_in_every_language_is_one_neutral_segment(now, settings, purpose, language):
    settings.PUBLIC_BASE_URL = "https://go.desertbloom-clinic.com"
    clinic = clinic_make(sender_name="Desert Bloom Wellness", name="Desert Bloom Ketamine & Pain Center")
    protocol = protocol_make(clinic, kind="induction", name="Ketamine depression induction")
    patient = patient_make(clinic, language=language)
    series = series_book(patient=patient, protocol=protocol, first_start=datetime(2026, 12, 30, 10), now=now)
    session = series.sessions.order_by("-number").first()  # two-digit dates, the longest times
    message = Message(session=session, patient=patient, purpose=purpose, channel=Channel.SMS, key=purpose)

    text = render(message, token=TOKEN).body

    assert fits_one_segment(text), (len(text), text)
    assert [word for word in FORBIDDEN if word in text.lower()] == []
    assert protocol.name.lower() not in text.lower()
    assert clinic.name.lower() not in text.lower()
    assert "Desert Bloom Wellness" in text
    assert "STOP" in text
    if purpose not in CANCELLATIONS:
        assert f"/r/{TOKEN}" in text
    if purpose not in (*CANCELLATIONS, Purpose.REFLOWED):  # new times point to the link's list instead
        assert ("Reply C to confirm, R to reschedule" in text) == (language == "en")


def test_a_very_long_link_still_gives_one_segment_that_says_how_to_stop(now, settings):
    settings.PUBLIC_BASE_URL = "https://reminders.desertbloom-clinic.example.com"
    clinic = clinic_make(sender_name="Desert Bloom Wellness Center")
    patient = patient_make(clinic, language="es")
    protocol = protocol_make(clinic, kind="booster")
    series = series_book(patient=patient, protocol=protocol, starts=[datetime(2026, 12, 30, 10)], now=now)
    message = Message(session=series.sessions.get(), patient=patient, purpose=Purpose.REMINDER, channel=Channel.SMS)

    text = render(message, token=TOKEN).body

    assert fits_one_segment(text)
    assert "STOP" in text and f"/r/{TOKEN}" in text


def test_email_carries_the_preparation_instructions_but_a_neutral_subject(now):
    clinic = clinic_make(sender_name="Desert Bloom")
    protocol = protocol_make(clinic, kind="booster", preparation_instructions="Nothing to eat for 6 hours.")
    patient = patient_make(clinic)
    series = series_book(patient=patient, protocol=protocol, starts=[datetime(2026, 1, 9, 10)], now=now)
    message = Message(session=series.sessions.get(), patient=patient, purpose=Purpose.REMINDER, channel=Channel.EMAIL)

    rendered = render(message, token=TOKEN)

    assert rendered.subject == "Your visit at Desert Bloom on Fri 9 Jan"
    assert "Nothing to eat for 6 hours." in rendered.body
    assert "Fri 9 Jan at 10:00am" in rendered.body
    assert clinical_words_in(rendered.subject) == []
    [invite] = rendered.invites
    assert invite.starts_at == series.sessions.get().starts_at and not invite.cancelled


def test_spanish_emails_keep_their_accents_and_texts_stay_gsm7(db):
    subject, body = default_wording("booked", "email", "es").subject, default_wording("booked", "email", "es").body
    assert "están reservadas" in subject
    assert "Cuándo:" in body and "Dónde:" in body and "llámenos" in body
    assert gsm7_safe("Clínica: sáb 10 ene, ¿cuál cita? Elija aquí. Señora José") == (
        "Clinica: sab 10 ene, ¿cual cita? Elija aqui. Señora José"
    )
    for purpose in ("booked", "moved", "cancelled", "cancel_all", "reflowed"):
        assert is_gsm7(gsm7_safe(default_wording(purpose, "sms", "es").body)), purpose
