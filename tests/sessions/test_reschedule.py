from datetime import datetime, timedelta

import pytest
from django.db import transaction

from sessions.calendar import BookingConflict
from sessions.models import Session
from sessions.selectors import session_slots
from sessions.services import series_book, session_cancel, session_confirm, session_mark, session_reschedule
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def booked(now):
    """A six-session induction series Tue 6 – Sun 11 Jan 2026 at 10:00 in a two-chair clinic."""
    clinic = clinic_make(chairs=2, buffer_minutes=15)
    induction = protocol_make(clinic, kind="induction")
    series = series_book(
        patient=patient_make(clinic), protocol=induction, first_start=datetime(2026, 1, 6, 10), now=now
    )
    return clinic, series, {s.number: s for s in series.sessions.all()}


def test_it_moves_a_session_and_keeps_the_history(now, booked):
    clinic, _, sessions = booked
    third = sessions[3]
    session_confirm(session=third, via=Session.Channel.SMS, now=now)

    moved = session_reschedule(session=third, starts_at=datetime(2026, 1, 8, 14), reason="patient asked", now=now)

    assert moved.starts_at.astimezone(clinic.zone).replace(tzinfo=None) == datetime(2026, 1, 8, 14)
    assert moved.version == 2
    assert moved.status == Session.Status.BOOKED  # the patient confirmed the old time, not this one
    assert [(m.from_starts_at, m.reason) for m in moved.moves.all()] == [(sessions[3].starts_at, "patient asked")]


@pytest.mark.parametrize(
    ("new_start", "code"),
    [
        (datetime(2026, 1, 13, 10), "series_gap"),  # past session 4 and beyond the 4-day gap
        (datetime(2026, 1, 7, 14), "series_gap"),  # same day as session 2: a gap of 0 days
        (datetime(2026, 1, 8, 17), "outside_opening_hours"),  # would end at 19:00, after closing
    ],
)
def test_a_move_that_breaks_a_rule_is_refused_and_changes_nothing(now, booked, new_start, code):
    _, _, sessions = booked

    with pytest.raises(BookingConflict) as refused:
        session_reschedule(session=sessions[3], starts_at=new_start, now=now)

    assert refused.value.code == code
    assert refused.value.session_number == 3
    assert Session.objects.get(pk=sessions[3].pk).starts_at == sessions[3].starts_at


def test_a_move_onto_a_taken_chair_is_refused(now, booked):
    clinic, _, sessions = booked
    booster = protocol_make(clinic, kind="booster")
    other_chair = clinic.chairs.exclude(pk=sessions[3].chair_id).get()
    series_book(
        patient=patient_make(clinic), protocol=booster, starts=[datetime(2026, 1, 8, 13)], chair=other_chair, now=now
    )

    with pytest.raises(BookingConflict) as refused:
        session_reschedule(session=sessions[3], starts_at=datetime(2026, 1, 8, 14), chair=other_chair, now=now)

    assert refused.value.code == "chair_overlap"


def test_every_offered_slot_is_accepted_by_reschedule(now, booked):
    clinic, _, sessions = booked
    booster = protocol_make(clinic, kind="booster")
    for chair in clinic.chairs.all():  # fill both chairs on Thursday afternoon
        series_book(
            patient=patient_make(clinic), protocol=booster, starts=[datetime(2026, 1, 8, 13)], chair=chair, now=now
        )
    third = sessions[3]

    slots = session_slots(session=third, days=14, now=now)

    assert slots
    local_days = {s.starts_at.astimezone(clinic.zone).date() for s in slots}
    assert local_days == {datetime(2026, 1, 8).date()}  # the only day between sessions 2 and 4
    assert all(not (datetime(2026, 1, 8, 11) < s.starts_at.astimezone(clinic.zone).replace(tzinfo=None) <
                    datetime(2026, 1, 8, 15, 15)) for s in slots)  # fmt: skip
    for slot in slots:
        with transaction.atomic():
            moved = session_reschedule(session=third, starts_at=slot.starts_at, now=now)
            assert (moved.starts_at, moved.chair_id) == (slot.starts_at, slot.chair_id)
            transaction.set_rollback(True)


def test_slots_of_a_first_session_span_the_days_its_gap_allows(now, booked):
    clinic, _, sessions = booked

    slots = session_slots(session=sessions[1], days=14, now=now)

    # Session 2 is on Wed 7 Jan: session 1 may be 1 to 4 days before it, and not in the past.
    days = sorted({s.starts_at.astimezone(clinic.zone).date() for s in slots})
    assert days == [datetime(2026, 1, 5).date(), datetime(2026, 1, 6).date()]
    assert all(s.starts_at > now for s in slots)


def test_a_cancelled_session_offers_no_slots_and_cannot_move(now, booked):
    _, _, sessions = booked
    session_cancel(session=sessions[2], reason="patient unwell", now=now)

    assert session_slots(session=Session.objects.get(pk=sessions[2].pk), now=now) == []
    with pytest.raises(BookingConflict) as refused:
        session_reschedule(session=sessions[2], starts_at=datetime(2026, 1, 7, 14), now=now)
    assert refused.value.code == "invalid_status"


def test_cancelling_frees_the_chair(now, booked):
    clinic, _, sessions = booked
    booster = protocol_make(clinic, kind="booster")
    session_cancel(session=sessions[2], reason="patient unwell", now=now)

    series_book(
        patient=patient_make(clinic),
        protocol=booster,
        starts=[datetime(2026, 1, 7, 10)],
        chair=sessions[2].chair,
        now=now,
    )


def test_attendance_moves_forward_only(now, booked):
    _, series, sessions = booked
    first = sessions[1]
    during = first.starts_at + timedelta(minutes=30)

    session_mark(session=first, status=Session.Status.ARRIVED, now=during)
    session_mark(session=first, status=Session.Status.COMPLETED, now=during + timedelta(hours=1))

    with pytest.raises(BookingConflict):
        session_mark(session=first, status=Session.Status.ARRIVED, now=during)
    with pytest.raises(BookingConflict):
        session_mark(session=sessions[2], status=Session.Status.NO_SHOW, now=now)  # it has not started yet
    assert Session.objects.get(pk=first.pk).status == Session.Status.COMPLETED


def test_confirming_twice_records_once(now, booked):
    _, _, sessions = booked

    assert session_confirm(session=sessions[1], via=Session.Channel.LINK, now=now) is True
    assert session_confirm(session=sessions[1], via=Session.Channel.SMS, now=now + timedelta(minutes=1)) is False

    confirmed = Session.objects.get(pk=sessions[1].pk)
    assert (confirmed.status, confirmed.confirmed_via, confirmed.confirmed_at) == ("confirmed", "link", now)
