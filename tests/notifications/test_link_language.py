"""The link page and emails in the patient's language, with the protocol's own Spanish name and
instructions; a patient may read the page in the other language without changing anything."""

from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from notifications.links import link_create
from notifications.models import Channel, Message, Purpose
from notifications.rendering import render
from sessions.clock import local_date, wall_clock
from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db

ENGLISH = "Bring a list of your medicines."
SPANISH = "Traiga una lista de sus medicamentos."


@pytest.fixture
def spanish_visit():
    clinic = clinic_make()
    protocol = protocol_make(
        clinic, kind="booster", preparation_instructions=ENGLISH, patient_name="Wellness visit",
        patient_name_es="Visita de bienestar", preparation_instructions_es=SPANISH,
    )  # fmt: skip
    day = local_date(timezone.now(), clinic.zone) + timedelta(days=4)
    start = wall_clock(day, datetime.min.time().replace(hour=10), clinic.zone)
    session = series_book(patient=patient_make(clinic, language="es"), protocol=protocol, starts=[start]).sessions.get()
    return session, link_create(session=session)


def test_a_spanish_patient_reads_the_protocols_spanish_name_and_instructions(spanish_visit):
    session, token = spanish_visit

    page = Client().get(f"/r/{token}").content.decode()

    assert "Visita de bienestar" in page and SPANISH in page and ENGLISH not in page
    assert '<html lang="es">' in page and f'href="/r/{token}?lang=en"' in page


def test_the_page_can_be_read_in_english_and_keeps_that_choice_through_its_forms(spanish_visit):
    session, token = spanish_visit
    client = Client()

    page = client.get(f"/r/{token}", {"lang": "en"}).content.decode()
    confirmed = client.post(f"/r/{token}?lang=en", {"action": "confirm", "driver": "yes"})

    assert "Wellness visit" in page and ENGLISH in page and '<html lang="en">' in page
    assert f'action="/r/{token}?lang=en"' in page and f'href="/r/{token}?lang=en&amp;step=move"' in page
    assert confirmed.status_code == 303 and confirmed["Location"] == f"/r/{token}?lang=en"
    session.patient.refresh_from_db()
    assert session.patient.language == "es"  # the page's language is the page's, not the record's


def test_a_spanish_email_carries_the_spanish_instructions_and_name(spanish_visit):
    session, _ = spanish_visit
    email = Message.objects.get(session=session, purpose=Purpose.BOOKED, channel=Channel.EMAIL)

    rendered = render(email, token="t0ken")

    assert SPANISH in rendered.body and ENGLISH not in rendered.body
    assert "Cuándo:" in rendered.body
    assert rendered.invites[0].summary.startswith("Visita de bienestar")
