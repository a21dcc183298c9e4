"""One phone number, patients of two clinics: each clinic sees the texts beside its own patient
only, handles them on its own, and never learns of the other clinic or its patient."""

import pytest
from django.urls import reverse

from notifications.inbound import Incoming, inbound_handle
from notifications.models import InboxText
from sessions.models import Patient
from tests.factories import clinic_make, patient_make

from .builders import at, client_as, session_make, staff_user

pytestmark = pytest.mark.django_db
PHONE = "+16025550142"


@pytest.fixture
def ours(clinic, booster, later) -> Patient:
    patient = patient_make(clinic, phone=PHONE, first_name="Ann", last_name="Ours")
    session_make(clinic, booster, chair=clinic.chairs.first(), starts_at=at(clinic, later, 9), patient=patient)
    return patient


@pytest.fixture
def theirs(later) -> Patient:
    """A patient of another clinic on the same number (registered there first, or mistyped here)."""
    clinic = clinic_make(name="Sunrise Centre", sender_name="Sunrise Care", phone="+14805550100")
    patient = patient_make(clinic, phone=PHONE, first_name="Bea", last_name="Theirs")
    booster = clinic.protocols.create(name="Booster", patient_name="Visit", session_count=1, chair_minutes=60)
    session_make(clinic, booster, chair=clinic.chairs.first(), starts_at=at(clinic, later, 11), patient=patient)
    return patient


def texted(body: str, sid: str = "SM1") -> str | None:
    return inbound_handle(incoming=Incoming(sid=sid, from_number=PHONE, to_number="+16025550199", body=body))


def test_a_text_shows_in_each_clinics_inbox_beside_its_own_patient_only(clinic, ours, theirs):
    texted("Running 10 minutes late")
    mine = client_as(staff_user("Scheduler", clinics=(clinic,)))
    other = client_as(staff_user("Scheduler", clinics=(theirs.clinic,), username="other"))

    inbox, elsewhere = mine.get(reverse("staff:inbox")), other.get(reverse("staff:inbox"))

    assert [t.patient for t in inbox.context["inbox"].texts] == [ours]
    assert [t.patient for t in elsewhere.context["inbox"].texts] == [theirs]
    html = inbox.content.decode() + mine.get(reverse("staff:patient", args=[ours.pk])).content.decode()
    assert "Running 10 minutes late" in html
    for word in ("Bea", "Theirs", "Sunrise"):
        assert word not in html  # no trace of the other clinic or its patient, the answer included


def test_handling_a_text_in_one_clinic_leaves_it_open_in_the_other(clinic, ours, theirs):
    texted("Can I bring my sister?")
    mine = client_as(staff_user("Scheduler", clinics=(clinic,)))
    other = client_as(staff_user("Scheduler", clinics=(theirs.clinic,), username="other"))
    my_copy = InboxText.objects.get(clinic=clinic)
    their_copy = InboxText.objects.get(clinic=theirs.clinic)

    assert other.post(reverse("staff:inbound-handled", args=[my_copy.pk])).status_code == 404
    mine.post(reverse("staff:inbound-handled", args=[my_copy.pk]))

    assert mine.get(reverse("staff:inbox")).context["inbox"].texts == []
    assert other.get(reverse("staff:inbox")).context["inbox"].texts == [their_copy]


def test_a_number_only_one_clinic_knows_shows_that_clinic_what_was_answered(clinic, ours):
    texted("Where do I park?")

    copy = InboxText.objects.get()
    assert copy.patient == ours and "we have your message" in copy.reply


def test_stop_from_a_shared_number_stops_texts_for_every_clinics_patient(clinic, ours, theirs):
    texted("STOP")

    assert set(Patient.objects.filter(phone=PHONE).values_list("sms_opted_out_at", flat=True)) != {None}
    assert all(p.sms_opted_out_at for p in Patient.objects.filter(phone=PHONE))
    assert sorted(InboxText.objects.values_list("outcome", flat=True)) == ["opted out", "opted out"]


def test_help_from_a_shared_number_names_each_clinic_and_its_phone(clinic, ours, theirs):
    reply = texted("HELP")

    assert f"{clinic.sender_name} {clinic.phone}" in reply
    assert "Sunrise Care +14805550100" in reply


def test_c_from_a_shared_number_confirms_nothing_and_each_clinic_sees_only_its_patients_visit(clinic, ours, theirs):
    reply = texted("C")

    assert reply.count("/r/") == 2
    assert not ours.sessions.filter(status="confirmed").exists()
    assert not theirs.sessions.filter(status="confirmed").exists()
    mine = InboxText.objects.get(clinic=clinic)
    assert mine.session == ours.sessions.get() and mine.reply == ""
