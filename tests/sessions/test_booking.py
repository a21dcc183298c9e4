from datetime import date, datetime, time, timedelta

import pytest
from django.core.exceptions import ValidationError

from sessions.calendar import BookingConflict
from sessions.models import Chair, ClosedDate, Series, Session
from sessions.services import series_book, series_plan
from tests.factories import clinic_make, patient_make, protocol_make, staffing_make

pytestmark = pytest.mark.django_db

MON_TO_SAT = range(6)


def local_starts(series: Series) -> list[datetime]:
    zone = series.clinic.zone
    return [s.starts_at.astimezone(zone).replace(tzinfo=None) for s in series.sessions.order_by("number")]


def book_single(clinic, protocol, starts: datetime, chair: Chair, now, **kwargs) -> Series:
    return series_book(patient=patient_make(clinic), protocol=protocol, starts=[starts], chair=chair, now=now, **kwargs)


def test_it_auto_places_an_induction_series_at_the_same_time_and_chair(now):
    clinic = clinic_make(weekdays=MON_TO_SAT, chairs=3)
    induction = protocol_make(clinic, kind="induction")

    series = series_book(
        patient=patient_make(clinic), protocol=induction, first_start=datetime(2026, 1, 6, 10), now=now
    )

    # Tue–Sat on consecutive days; the clinic is closed on Sundays, so the sixth goes to Monday.
    days = [date(2026, 1, d) for d in (6, 7, 8, 9, 10, 12)]
    assert local_starts(series) == [datetime.combine(d, time(10)) for d in days]
    sessions = list(series.sessions.order_by("number"))
    assert [s.number for s in sessions] == [1, 2, 3, 4, 5, 6]
    assert {s.chair_id for s in sessions} == {sessions[0].chair_id}
    assert all(s.ends_at - s.starts_at == timedelta(hours=2) for s in sessions)
    assert all(s.status == Session.Status.BOOKED for s in sessions)


def test_auto_placement_changes_chair_then_time_only_when_it_must(now):
    clinic = clinic_make(chairs=2)
    booster = protocol_make(clinic, kind="booster")
    induction = protocol_make(clinic, kind="induction")
    chair_1, chair_2 = clinic.chairs.order_by("name")
    book_single(clinic, booster, datetime(2026, 1, 7, 10), chair_1, now)  # day 2: chair 1 taken at 10:00
    book_single(clinic, booster, datetime(2026, 1, 8, 10), chair_1, now)  # day 3: both chairs taken at 10:00
    book_single(clinic, booster, datetime(2026, 1, 8, 10), chair_2, now)

    series = series_book(
        patient=patient_make(clinic), protocol=induction, first_start=datetime(2026, 1, 6, 10), chair=chair_1, now=now
    )

    placed = [(s.chair_id, s.starts_at.astimezone(clinic.zone).replace(tzinfo=None)) for s in series.sessions.all()]
    assert placed[:4] == [
        (chair_1.pk, datetime(2026, 1, 6, 10)),
        (chair_2.pk, datetime(2026, 1, 7, 10)),  # same time, the other chair
        (chair_1.pk, datetime(2026, 1, 8, 8)),  # both taken at 10:00: the nearest free time (earlier on a tie)
        (chair_1.pk, datetime(2026, 1, 9, 10)),  # back to the usual time and chair
    ]


def test_it_books_a_pain_course_on_consecutive_days(now):
    clinic = clinic_make(opens=time(7), closes=time(19))
    pain = protocol_make(clinic, kind="pain")

    series = series_book(patient=patient_make(clinic), protocol=pain, first_start=datetime(2026, 1, 12, 8), now=now)

    assert local_starts(series) == [datetime(2026, 1, d, 8) for d in range(12, 17)]
    assert all(s.ends_at - s.starts_at == timedelta(hours=5) for s in series.sessions.all())


def test_a_series_whose_fourth_session_cannot_be_placed_books_nothing_and_says_why(now):
    clinic = clinic_make(opens=time(7), closes=time(19))
    pain = protocol_make(clinic, kind="pain")
    ClosedDate.objects.create(clinic=clinic, date=date(2026, 1, 15), reason="staff training")
    patient = patient_make(clinic)

    with pytest.raises(BookingConflict) as refused:
        series_book(patient=patient, protocol=pain, first_start=datetime(2026, 1, 12, 8), now=now)

    assert refused.value.code == "no_valid_slot"
    assert refused.value.session_number == 4
    assert "staff training" in refused.value.detail
    assert Series.objects.count() == 0
    assert Session.objects.count() == 0


def test_explicit_starts_name_the_first_rule_broken(now):
    clinic = clinic_make()
    induction = protocol_make(clinic, kind="induction")
    starts = [datetime(2026, 1, d, 10) for d in (6, 7, 8, 15, 16, 17)]  # 7 days between 3rd and 4th

    with pytest.raises(BookingConflict) as refused:
        series_book(patient=patient_make(clinic), protocol=induction, starts=starts, now=now)

    assert (refused.value.code, refused.value.rule, refused.value.session_number) == ("series_gap", 5, 4)
    assert Session.objects.count() == 0


def test_the_preview_lists_every_session_with_its_conflict_and_books_nothing(now):
    clinic = clinic_make(weekdays=MON_TO_SAT)
    induction = protocol_make(clinic, kind="induction")
    starts = [datetime(2026, 1, d, 10) for d in (6, 7, 8, 9, 10, 11)]  # the 11th is a Sunday

    plan = series_plan(patient=patient_make(clinic), protocol=induction, starts=starts, now=now)

    assert [p.conflict.code if p.conflict else None for p in plan] == [None] * 5 + ["outside_opening_hours"]
    assert Session.objects.count() == 0


@pytest.mark.parametrize(("buffer_minutes", "second_books"), [(0, True), (15, False)])
def test_back_to_back_sessions_respect_the_turnover_buffer(now, buffer_minutes, second_books):
    clinic = clinic_make(buffer_minutes=buffer_minutes)
    booster = protocol_make(clinic, kind="booster")
    chair = clinic.chairs.first()
    book_single(clinic, booster, datetime(2026, 1, 6, 10), chair, now)

    if second_books:
        book_single(clinic, booster, datetime(2026, 1, 6, 12), chair, now)
        assert Session.objects.filter(chair=chair).count() == 2
    else:
        with pytest.raises(BookingConflict) as refused:
            book_single(clinic, booster, datetime(2026, 1, 6, 12), chair, now)
        assert refused.value.code == "chair_overlap"
        assert Session.objects.filter(chair=chair).count() == 1


def test_a_patient_cannot_be_in_two_chairs_at_once(now):
    clinic = clinic_make()
    booster = protocol_make(clinic, kind="booster")
    patient = patient_make(clinic)
    chair_1, chair_2 = clinic.chairs.order_by("name")
    series_book(patient=patient, protocol=booster, starts=[datetime(2026, 1, 6, 10)], chair=chair_1, now=now)

    with pytest.raises(BookingConflict) as refused:
        series_book(patient=patient, protocol=booster, starts=[datetime(2026, 1, 6, 11)], chair=chair_2, now=now)

    assert (refused.value.code, refused.value.rule) == ("patient_overlap", 3)


def test_staffing_capacity_refuses_the_session_that_would_exceed_it(now):
    clinic = clinic_make(chairs=4)
    staffing_make(clinic, nurses=1, per_nurse=2)
    booster = protocol_make(clinic, kind="booster")
    chairs = list(clinic.chairs.order_by("name"))
    book_single(clinic, booster, datetime(2026, 1, 6, 10), chairs[0], now)
    book_single(clinic, booster, datetime(2026, 1, 6, 10, 30), chairs[1], now)

    with pytest.raises(BookingConflict) as refused:
        book_single(clinic, booster, datetime(2026, 1, 6, 11, 45), chairs[2], now)
    assert (refused.value.code, refused.value.rule) == ("staffing_capacity", 4)

    book_single(clinic, booster, datetime(2026, 1, 6, 12), chairs[2], now)  # the first has left by then
    assert Session.objects.count() == 3


def test_staffing_blocks_bound_concurrency_only_while_they_run(now):
    clinic = clinic_make(chairs=3)
    staffing_make(clinic, nurses=1, per_nurse=3, starts=time(8), ends=time(12))
    staffing_make(clinic, nurses=1, per_nurse=1, starts=time(12), ends=time(18))
    booster = protocol_make(clinic, kind="booster")
    chairs = list(clinic.chairs.order_by("name"))
    book_single(clinic, booster, datetime(2026, 1, 6, 9), chairs[0], now)
    book_single(clinic, booster, datetime(2026, 1, 6, 10, 30), chairs[1], now)  # runs into the one-patient afternoon

    with pytest.raises(BookingConflict) as refused:
        book_single(clinic, booster, datetime(2026, 1, 6, 11), chairs[2], now)  # two patients at 12:00
    assert refused.value.code == "staffing_capacity"
    assert "12:00" in refused.value.detail

    book_single(clinic, booster, datetime(2026, 1, 6, 8), chairs[2], now)  # the morning has room for three


def test_the_stagger_cap_limits_starts_per_slot(now):
    clinic = clinic_make(chairs=3, max_starts_per_slot=1)
    booster = protocol_make(clinic, kind="booster")
    chairs = list(clinic.chairs.order_by("name"))
    book_single(clinic, booster, datetime(2026, 1, 6, 10), chairs[0], now)

    with pytest.raises(BookingConflict) as refused:
        book_single(clinic, booster, datetime(2026, 1, 6, 10, 5), chairs[1], now)
    assert (refused.value.code, refused.value.rule) == ("stagger_cap", 4)

    book_single(clinic, booster, datetime(2026, 1, 6, 10, 15), chairs[1], now)


@pytest.mark.parametrize(
    ("starts", "code"),
    [
        (datetime(2026, 1, 6, 7), "outside_opening_hours"),  # before opening
        (datetime(2026, 1, 6, 17), "outside_opening_hours"),  # ends after closing
        (datetime(2026, 1, 1, 10), "starts_in_past"),
    ],
)
def test_sessions_stay_inside_opening_hours_and_the_future(now, starts, code):
    clinic = clinic_make()
    booster = protocol_make(clinic, kind="booster")

    with pytest.raises(BookingConflict) as refused:
        series_book(patient=patient_make(clinic), protocol=booster, starts=[starts], now=now)

    assert refused.value.code == code


def test_a_closed_date_refuses_bookings(now):
    clinic = clinic_make()
    ClosedDate.objects.create(clinic=clinic, date=date(2026, 1, 6), reason="holiday")
    booster = protocol_make(clinic, kind="booster")

    with pytest.raises(BookingConflict) as refused:
        series_book(patient=patient_make(clinic), protocol=booster, starts=[datetime(2026, 1, 6, 10)], now=now)

    assert (refused.value.code, refused.value.rule) == ("closed_date", 1)


def test_an_inactive_chair_takes_no_bookings(now):
    clinic = clinic_make(chairs=1)
    chair = clinic.chairs.get()
    chair.is_active = False
    chair.save()
    booster = protocol_make(clinic, kind="booster")

    with pytest.raises(BookingConflict) as refused:
        series_book(patient=patient_make(clinic), protocol=booster, starts=[datetime(2026, 1, 6, 10)], now=now)

    assert refused.value.code == "chair_inactive"


def test_the_wrong_number_of_starts_is_bad_input(now):
    clinic = clinic_make()
    induction = protocol_make(clinic, kind="induction")

    with pytest.raises(ValidationError) as refused:
        series_book(patient=patient_make(clinic), protocol=induction, starts=[datetime(2026, 1, 6, 10)], now=now)

    assert "starts" in refused.value.message_dict
