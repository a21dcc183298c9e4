"""The waitlist on the staff pages: added from the patient page, listed in rank order, and a
cancelled session's time filled from it by hand; each clinic sees only its own."""

from datetime import datetime, time, timedelta

import pytest
from django.urls import reverse

from sessions.models import AuditEvent, Offer, Series, WaitlistEntry
from sessions.services import series_book, session_cancel
from sessions.waitlist import waitlist_join
from tests.factories import clinic_make, patient_make, protocol_make

from .builders import client_as, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def cancelled(clinic, booster, later):
    session = series_book(patient=patient_make(clinic, first_name="Leaving"), protocol=booster,
                          first_start=datetime.combine(later, time(10))).sessions.get()  # fmt: skip
    return session_cancel(session=session, reason="patient asked")


def test_a_scheduler_puts_a_patient_on_the_waitlist_from_their_page(scheduler, patient, booster, later):
    form = {
        "protocol": booster.pk, "earliest": later.isoformat(), "latest": (later + timedelta(days=7)).isoformat(),
        "weekdays": [0, 2, 4], "not_before": "09:00", "needed_by": (later + timedelta(days=5)).isoformat(),
    }  # fmt: skip

    added = scheduler.post(reverse("staff:patient-waitlist", args=[patient.pk]), form, follow=True)

    entry = WaitlistEntry.objects.get(patient=patient)
    assert (entry.protocol, entry.weekday_names, entry.not_before) == (booster, "Mon/Wed/Fri", time(9))
    assert f"{patient} is on the waitlist for a Booster series." in [str(m) for m in added.context["messages"]]
    assert "Mon/Wed/Fri" in added.content.decode()
    listed = scheduler.get(reverse("staff:waitlist"))
    assert [e.pk for _, entries in listed.context["lists"] for e in entries] == [entry.pk]


def test_bad_waitlist_input_is_a_message_not_an_error(scheduler, patient, booster, later):
    form = {"protocol": booster.pk, "earliest": later.isoformat(), "latest": (later - timedelta(days=1)).isoformat()}

    refused = scheduler.post(reverse("staff:patient-waitlist", args=[patient.pk]), form, follow=True)

    assert refused.status_code == 200
    assert [str(m) for m in refused.context["messages"]] == ["Not added: The last day is before the first."]
    assert not WaitlistEntry.objects.exists()


def test_a_cancelled_time_is_filled_from_the_waitlist_by_hand(scheduler, clinic, booster, cancelled, later):
    first = waitlist_join(patient=patient_make(clinic, first_name="First"), protocol=booster, earliest=later,
                          latest=later, needed_by=later)  # fmt: skip
    waitlist_join(patient=patient_make(clinic, first_name="Second"), protocol=booster, earliest=later, latest=later)
    board = scheduler.get(reverse("staff:board", args=[clinic.pk]), {"date": later.isoformat()}).content.decode()
    assert reverse("staff:session-fill", args=[cancelled.pk]) in board

    page = scheduler.get(reverse("staff:session-fill", args=[cancelled.pk]))
    assert [c.entry.patient.first_name for c in page.context["candidates"]] == ["First", "Second"]
    booked = scheduler.post(reverse("staff:session-fill", args=[cancelled.pk]), {"entry": first.pk}, follow=True)

    series = Series.objects.get(patient=first.patient)
    assert series.sessions.get().starts_at == cancelled.starts_at
    first.refresh_from_db()
    assert first.status == WaitlistEntry.Status.BOOKED
    assert AuditEvent.objects.get(series=series, action="filled from waitlist").actor.username == "scheduler"
    assert "booked from the waitlist" in str(list(booked.context["messages"])[0])
    again = scheduler.get(reverse("staff:session-fill", args=[cancelled.pk]))
    assert [c.entry.patient.first_name for c in again.context["candidates"]] == []
    # The time is taken again: the board no longer offers to fill it.
    board = scheduler.get(reverse("staff:board", args=[clinic.pk]), {"date": later.isoformat()}).content.decode()
    assert reverse("staff:session-fill", args=[cancelled.pk]) not in board


def test_another_clinics_waitlist_is_out_of_reach(clinic, booster, cancelled, later):
    elsewhere = clinic_make(name="Elsewhere")
    theirs = waitlist_join(patient=patient_make(elsewhere), protocol=protocol_make(elsewhere, kind="booster"),
                           earliest=later, latest=later)  # fmt: skip
    mine = waitlist_join(patient=patient_make(clinic), protocol=booster, earliest=later, latest=later)
    limited = client_as(staff_user("Scheduler", clinics=(clinic,), username="limited"))

    listed = limited.get(reverse("staff:waitlist"))
    removed = limited.post(reverse("staff:waitlist-remove", args=[theirs.pk]))
    filled = limited.post(reverse("staff:session-fill", args=[cancelled.pk]), {"entry": theirs.pk})

    assert [e.pk for _, entries in listed.context["lists"] for e in entries] == [mine.pk]
    assert removed.status_code == 404 and filled.status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == WaitlistEntry.Status.WAITING


def test_a_nurse_neither_sees_nor_fills_the_waitlist(nurse, cancelled):
    assert nurse.get(reverse("staff:waitlist")).status_code == 403
    assert nurse.get(reverse("staff:session-fill", args=[cancelled.pk])).status_code == 403


@pytest.mark.parametrize("value", ["", "abc", "9" * 30, "-1"])
def test_a_bad_entry_to_fill_with_is_a_404_not_an_error(scheduler, cancelled, value):
    answer = scheduler.post(reverse("staff:session-fill", args=[cancelled.pk]), {"entry": value})

    assert answer.status_code == 404


def test_a_scheduler_offers_a_freed_time_by_text_and_sees_the_offer_out(scheduler, clinic, booster, cancelled, later):
    entry = waitlist_join(patient=patient_make(clinic, first_name="Hopeful"), protocol=booster,
                          earliest=later - timedelta(days=1), latest=later + timedelta(days=1))  # fmt: skip
    fill = reverse("staff:session-fill", args=[cancelled.pk])

    offered = scheduler.post(fill, {"entry": entry.pk, "action": "offer"}, follow=True)
    again = scheduler.post(fill, {"entry": entry.pk, "action": "offer"}, follow=True)

    offer = Offer.objects.get(entry=entry)
    assert (offer.status, offer.created_by.username) == ("offered", "scheduler")
    assert [str(m) for m in offered.context["messages"]][0].startswith("Hopeful Example")
    assert "is offered the time until" in [str(m) for m in offered.context["messages"]][0]
    assert "Offers of this time" in offered.content.decode() and "Hopeful" in offered.content.decode()
    assert any("offered this time already" in str(m) for m in again.context["messages"])
    listed = scheduler.get(reverse("staff:waitlist")).content.decode()
    assert "Offered " in listed and offer.expires_at.astimezone(clinic.zone).strftime("%H:%M") in listed


def test_a_time_filled_from_the_waitlist_says_who_took_it(scheduler, clinic, booster, cancelled, later):
    entry = waitlist_join(patient=patient_make(clinic, first_name="Taker"), protocol=booster,
                          earliest=later - timedelta(days=1), latest=later + timedelta(days=1))  # fmt: skip
    fill = reverse("staff:session-fill", args=[cancelled.pk])
    scheduler.post(fill, {"entry": entry.pk})

    page = scheduler.get(fill).content.decode()

    assert "Filled from the waitlist:" in page and "Taker" in page
    assert "No one on the waitlist can take this time" not in page
