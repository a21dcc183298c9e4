"""The waitlist: who waits for what, who a freed time fits (every booking rule, checked by the
code that books), in which order, and booking one of them."""

from datetime import date, datetime, time, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from sessions.calendar import BookingConflict
from sessions.clock import local_date, wall_clock
from sessions.models import AuditEvent, Series, Session, WaitlistEntry
from sessions.services import series_book, session_cancel
from sessions.waitlist import waitlist_candidates, waitlist_fill, waitlist_join, waitlist_remove
from tests.factories import clinic_make, patient_make, protocol_make, staffing_make
from tests.sessions.test_concurrency import race

pytestmark = pytest.mark.django_db


@pytest.fixture
def clinic():
    clinic = clinic_make(chairs=2, opens=time(8), closes=time(18))
    staffing_make(clinic, nurses=2, per_nurse=3, starts=time(8), ends=time(18))
    return clinic


@pytest.fixture
def booster(clinic):
    return protocol_make(clinic, kind="booster")


@pytest.fixture
def day(clinic) -> date:
    return local_date(timezone.now(), clinic.zone) + timedelta(days=5)


def at(clinic, day: date, hour: int) -> datetime:
    return wall_clock(day, time(hour), clinic.zone)


def freed(clinic, booster, day: date, hour: int = 10) -> Session:
    """A session of another patient, cancelled: its chair time is free again."""
    session = series_book(patient=patient_make(clinic, first_name="Freed"), protocol=booster,
                          starts=[at(clinic, day, hour)]).sessions.get()  # fmt: skip
    session_cancel(session=session, reason="patient asked")
    return session


def wait(clinic, protocol, day: date, **fields) -> WaitlistEntry:
    patient = fields.pop("patient", None) or patient_make(clinic)
    return waitlist_join(patient=patient, protocol=protocol, earliest=day - timedelta(days=2),
                         latest=day + timedelta(days=2), **fields)  # fmt: skip


def names(candidates) -> list[str]:
    return [c.entry.patient.first_name for c in candidates]


def test_a_freed_time_goes_to_the_nearest_deadline_then_the_longest_waiting(clinic, booster, day):
    gone = freed(clinic, booster, day)
    wait(clinic, booster, day, patient=patient_make(clinic, first_name="Early"))
    wait(clinic, booster, day, patient=patient_make(clinic, first_name="Later"))
    wait(clinic, booster, day, patient=patient_make(clinic, first_name="Urgent"), needed_by=day + timedelta(days=1))

    found = waitlist_candidates(clinic=clinic, starts_at=gone.starts_at, chair=gone.chair)

    assert names(found) == ["Urgent", "Early", "Later"]
    assert found[0].starts == [gone.starts_at]


def test_the_ranking_is_the_clinics_to_set(clinic, booster, day, settings):
    settings.WAITLIST_RANKING = ["waited"]
    gone = freed(clinic, booster, day)
    wait(clinic, booster, day, patient=patient_make(clinic, first_name="Early"))
    wait(clinic, booster, day, patient=patient_make(clinic, first_name="Urgent"), needed_by=day)

    assert names(waitlist_candidates(clinic=clinic, starts_at=gone.starts_at, chair=gone.chair)) == ["Early", "Urgent"]


def test_only_those_the_time_suits_and_every_rule_allows_are_candidates(clinic, booster, day):
    gone = freed(clinic, booster, day, hour=10)
    busy = patient_make(clinic, first_name="Busy")  # has a visit of their own at that hour
    other_chair = clinic.chairs.exclude(pk=gone.chair_id).get()
    series_book(patient=busy, protocol=booster, starts=[at(clinic, day, 11)], chair=other_chair)
    induction = protocol_make(clinic, kind="induction", name="Induction")
    wait(clinic, booster, day, patient=busy)
    wait(clinic, booster, day, patient=patient_make(clinic, first_name="Weekend"), weekdays=[5, 6]
         if day.weekday() < 5 else [0])  # fmt: skip
    wait(clinic, booster, day, patient=patient_make(clinic, first_name="Afternoon"), not_before=time(13))
    wait(clinic, booster, day + timedelta(days=10), patient=patient_make(clinic, first_name="Next week"))
    wait(clinic, induction, day, patient=patient_make(clinic, first_name="Series"))
    wait(clinic, booster, day, patient=patient_make(clinic, first_name="Fits"))

    found = waitlist_candidates(clinic=clinic, starts_at=gone.starts_at, chair=gone.chair)

    # The induction's six sessions all fit from 10:00 on an open clinic: it is a candidate too.
    assert names(found) == ["Series", "Fits"]
    assert len(found[0].starts) == 6


def test_an_earlier_time_for_a_booked_session_is_offered_only_when_earlier_and_valid(clinic, booster, day):
    gone = freed(clinic, booster, day, hour=10)
    patient = patient_make(clinic, first_name="Moving")
    booked = series_book(patient=patient, protocol=booster, starts=[at(clinic, day + timedelta(days=3), 9)])
    session = booked.sessions.get()
    entry = waitlist_join(
        patient=patient, session=session, earliest=day - timedelta(days=1), latest=day + timedelta(days=2)
    )

    assert entry.protocol == booster and entry.wish == "an earlier session 1 of Booster"
    assert names(waitlist_candidates(clinic=clinic, starts_at=gone.starts_at, chair=gone.chair)) == ["Moving"]
    with pytest.raises(ValidationError) as refused:
        waitlist_join(patient=patient, session=session, earliest=day, latest=day + timedelta(days=3))
    assert "latest" in refused.value.message_dict


def test_an_offer_a_patient_accepts_alone_keeps_the_minimum_notice(clinic, booster, day):
    soon = local_date(timezone.now(), clinic.zone) + timedelta(days=1)
    gone = freed(clinic, booster, soon, hour=10)
    wait(clinic, booster, soon, patient=patient_make(clinic, first_name="Anyone"))
    clinic.self_service_notice_hours = 72
    clinic.save()

    by_staff = waitlist_candidates(clinic=clinic, starts_at=gone.starts_at, chair=gone.chair)
    by_link = waitlist_candidates(clinic=clinic, starts_at=gone.starts_at, chair=gone.chair, self_service=True)

    assert names(by_staff) == ["Anyone"] and by_link == []


def test_filling_books_the_series_closes_the_entry_and_is_audited(clinic, booster, day):
    gone = freed(clinic, booster, day)
    entry = wait(clinic, booster, day, patient=patient_make(clinic, first_name="Filled"))

    series = waitlist_fill(entry=entry, starts_at=gone.starts_at, chair=gone.chair)

    entry.refresh_from_db()
    assert (entry.status, entry.booked_series) == (WaitlistEntry.Status.BOOKED, series)
    assert series.sessions.get().starts_at == gone.starts_at
    assert AuditEvent.objects.filter(series=series, action="filled from waitlist").exists()
    with pytest.raises(BookingConflict) as again:
        waitlist_fill(entry=entry, starts_at=gone.starts_at + timedelta(days=1))
    assert again.value.code == "waitlist_closed"


def test_filling_an_earlier_time_moves_the_session(clinic, booster, day):
    gone = freed(clinic, booster, day, hour=10)
    patient = patient_make(clinic)
    session = series_book(
        patient=patient, protocol=booster, starts=[at(clinic, day + timedelta(days=3), 9)]
    ).sessions.get()
    entry = waitlist_join(patient=patient, session=session, earliest=day, latest=day)

    waitlist_fill(entry=entry, starts_at=gone.starts_at, chair=gone.chair)

    session.refresh_from_db()
    assert session.starts_at == gone.starts_at and session.moves.get().reason == "earlier time from the waitlist"


def test_joining_twice_or_with_bad_dates_names_the_field(clinic, booster, day):
    patient = patient_make(clinic)
    wait(clinic, booster, day, patient=patient)
    today = local_date(timezone.now(), clinic.zone)

    for fields, field in (
        ({"earliest": day, "latest": day}, "protocol"),  # already waiting
        ({"earliest": day, "latest": today - timedelta(days=1)}, "latest"),
        ({"earliest": day + timedelta(days=1), "latest": day}, "latest"),
        ({"earliest": day, "latest": day + timedelta(days=900)}, "latest"),
    ):
        with pytest.raises(ValidationError) as refused:
            waitlist_join(patient=patient_make(clinic) if field != "protocol" else patient, protocol=booster, **fields)
        assert field in refused.value.message_dict, fields


def test_a_removed_entry_is_no_candidate(clinic, booster, day):
    gone = freed(clinic, booster, day)
    entry = wait(clinic, booster, day)

    assert waitlist_remove(entry=entry) is True and waitlist_remove(entry=entry) is False
    assert waitlist_candidates(clinic=clinic, starts_at=gone.starts_at, chair=gone.chair) == []


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_eight_schedulers_filling_one_freed_time_book_it_once(booster, clinic, day):
    gone = freed(clinic, booster, day)
    entries = [wait(clinic, booster, day) for _ in range(8)]

    outcomes = race([lambda e=e: waitlist_fill(entry=e, starts_at=gone.starts_at, chair=gone.chair) for e in entries])

    assert outcomes["booked"] == 1 and sum(outcomes.values()) == 8
    assert set(outcomes) <= {"booked", "chair_overlap"}
    assert Session.objects.filter(chair=gone.chair, starts_at=gone.starts_at, status__in=Session.HOLDING).count() == 1
    assert WaitlistEntry.objects.filter(status=WaitlistEntry.Status.BOOKED).count() == 1
    assert Series.objects.filter(patient__in=[e.patient for e in entries]).count() == 1


def test_the_days_and_hours_are_asked_of_the_database_before_the_tries_run_out(clinic, booster, day, monkeypatch):
    from sessions import waitlist

    monkeypatch.setattr(waitlist, "CANDIDATE_TRIES", 2)
    gone = freed(clinic, booster, day, hour=10)
    other_day = [(day.weekday() + 1) % 7]
    for n in range(3):  # waiting longest, but never on that weekday
        wait(clinic, booster, day, patient=patient_make(clinic, first_name=f"Other{n}"), weekdays=other_day)
    wait(clinic, booster, day, patient=patient_make(clinic, first_name="Afternoons"), not_before=time(13))
    wait(clinic, booster, day, patient=patient_make(clinic, first_name="Fits"))

    assert names(waitlist_candidates(clinic=clinic, starts_at=gone.starts_at, chair=gone.chair)) == ["Fits"]
