"""A series over time (rules 10, 11, 12, 13, 15): what holds across a patient's series, re-flow
and make-up, the gap report, self-service notice and attendance with undo."""

from datetime import datetime, timedelta

import pytest

from sessions.calendar import BookingConflict
from sessions.models import AuditEvent, Series, Session
from sessions.selectors import self_service_earliest, series_gaps, session_slots
from sessions.services import (
    series_book,
    series_plan,
    series_reflow,
    series_reflow_plan,
    session_cancel,
    session_mark,
    session_reschedule,
    session_undo,
)
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def clinic():
    return clinic_make(chairs=3, buffer_minutes=15)


@pytest.fixture
def induction(clinic):
    return protocol_make(clinic, kind="induction")  # 6 sessions, 2 h, 1–4 days apart


@pytest.fixture
def patient(clinic):
    return patient_make(clinic)


@pytest.fixture
def series(now, induction, patient):
    """Tue 6 – Sun 11 Jan 2026 at 10:00, one a day."""
    return series_book(patient=patient, protocol=induction, first_start=datetime(2026, 1, 6, 10), now=now)


def local(session: Session) -> datetime:
    return session.starts_at.astimezone(session.clinic.zone).replace(tzinfo=None)


def numbered(series: Series) -> dict[int, Session]:
    return {s.number: s for s in series.sessions.filter(status__in=Session.HOLDING)}


# Rule 10: across a patient's series


def test_a_second_active_series_of_the_same_protocol_is_refused_and_the_preview_says_so(now, series, induction):
    plan = series_plan(patient=series.patient, protocol=induction, first_start=datetime(2026, 1, 20, 10), now=now)

    assert plan[0].conflict is not None and plan[0].conflict.code == "series_duplicate"
    with pytest.raises(BookingConflict) as refused:
        series_book(patient=series.patient, protocol=induction, first_start=datetime(2026, 1, 20, 10), now=now)
    assert (refused.value.code, refused.value.rule, refused.value.session_number) == ("series_duplicate", 10, 1)
    assert Series.objects.filter(patient=series.patient).count() == 1


def test_staff_may_book_a_second_series_with_a_reason_kept_in_the_audit_trail(now, series, induction):
    second = series_book(
        patient=series.patient, protocol=induction, first_start=datetime(2026, 1, 20, 10),
        override_reason="restarting after a hospital stay", now=now,
    )  # fmt: skip

    assert second.override_reason == "restarting after a hospital stay"
    booked = AuditEvent.objects.get(series=second, action="booked")
    assert booked.detail.endswith("beside another active series: restarting after a hospital stay")


def test_an_infusion_of_another_series_keeps_the_protocols_minimum_gap(now, clinic, series, induction, patient):
    # The case: a second induction on the same day as one of the first (09:00 and 13:00 would both fit).
    with pytest.raises(BookingConflict) as refused:
        series_book(
            patient=patient, protocol=induction, starts=[datetime(2026, 1, 8, 14 + n % 2) for n in range(6)],
            override_reason="second course", now=now,
        )  # fmt: skip
    assert (refused.value.code, refused.value.rule, refused.value.session_number) == ("patient_gap", 10, 1)
    assert "Thu 08 Jan 2026 10:00" in refused.value.detail


def test_a_booster_keeps_its_own_gap_from_the_induction(now, clinic, series, patient):
    booster = protocol_make(clinic, kind="booster", min_gap_days=2, max_gap_days=2)

    with pytest.raises(BookingConflict) as refused:
        series_book(patient=patient, protocol=booster, starts=[datetime(2026, 1, 12, 10)], now=now)
    assert refused.value.code == "patient_gap"  # a day after session 6; the booster needs two
    assert series_book(patient=patient, protocol=booster, starts=[datetime(2026, 1, 13, 10)], now=now)


def test_moving_a_session_next_to_another_series_visit_is_refused(now, clinic, series, patient):
    booster = protocol_make(clinic, kind="booster")
    later = series_book(patient=patient, protocol=booster, starts=[datetime(2026, 1, 14, 10)], now=now)
    sixth = numbered(series)[6]

    with pytest.raises(BookingConflict) as refused:
        session_reschedule(session=sixth, starts_at=datetime(2026, 1, 14, 15), now=now)
    assert refused.value.code == "patient_gap"
    slots = session_slots(session=sixth, days=14, now=now)
    booster_day = local(later.sessions.get()).date()
    assert slots and all(s.starts_at.astimezone(clinic.zone).date() != booster_day for s in slots)


def test_a_cancelled_or_completed_series_does_not_block_a_new_one(now, series, induction):
    from sessions.services import series_cancel

    series_cancel(series=series, reason="paused", now=now)

    again = series_book(patient=series.patient, protocol=induction, first_start=datetime(2026, 1, 20, 10), now=now)
    assert again.override_reason == ""


# Rule 11: re-flow and make-up


def test_moving_a_session_later_re_spaces_only_the_sessions_that_need_it(now, series):
    sessions = numbered(series)

    plan = series_reflow_plan(session=sessions[3], starts_at=datetime(2026, 1, 11, 10), now=now)

    assert [(step.number, step.changes) for step in plan] == [(3, True), (4, True), (5, True), (6, True)]
    assert all(step.conflict is None for step in plan)
    assert Session.objects.get(pk=sessions[4].pk).starts_at == sessions[4].starts_at  # a preview writes nothing

    changed = series_reflow(session=sessions[3], starts_at=datetime(2026, 1, 11, 10), now=now)

    after = numbered(Series.objects.get(pk=series.pk))
    assert [local(after[n]) for n in range(1, 7)] == [
        datetime(2026, 1, 6, 10), datetime(2026, 1, 7, 10), datetime(2026, 1, 11, 10),
        datetime(2026, 1, 12, 10), datetime(2026, 1, 13, 10), datetime(2026, 1, 14, 10),
    ]  # fmt: skip
    assert [s.number for s in changed] == [3, 4, 5, 6]
    assert all(s.version == 2 and s.status == Session.Status.BOOKED for s in changed)
    assert series_gaps(series_ids=[series.pk]) == {}


def test_a_later_session_still_inside_its_gap_stays_where_it_is(now, series):
    sessions = numbered(series)
    # Session 5 onto session 6's day: 6 must go to the next day.
    plan = series_reflow_plan(session=sessions[5], starts_at=datetime(2026, 1, 11, 13), now=now)

    assert [(step.number, step.changes) for step in plan] == [(5, True), (6, True)]
    # Session 2 later the same day: every later one still keeps its gap, and stays.
    plan = series_reflow_plan(session=sessions[2], starts_at=datetime(2026, 1, 7, 14), now=now)
    assert [(step.number, step.changes) for step in plan] == [(2, True), (3, False), (4, False), (5, False), (6, False)]


def test_a_reflow_that_cannot_place_a_session_books_nothing_and_names_it(now, clinic, series):
    sessions = numbered(series)
    # Close the clinic on every day session 5 could take after session 4 moves to Mon 12.
    for day in range(13, 17):
        clinic.closed_dates.create(date=datetime(2026, 1, day).date(), reason="inventory")

    with pytest.raises(BookingConflict) as refused:
        series_reflow(session=sessions[4], starts_at=datetime(2026, 1, 12, 10), now=now)

    assert (refused.value.code, refused.value.session_number) == ("no_valid_slot", 5)
    assert [local(s) for s in numbered(series).values()] == [local(s) for s in sessions.values()]


def test_sessions_may_trade_places_inside_one_reflow(now, series):
    # Session 4 takes session 5's time and chair, 5 takes 6's: for a moment inside the
    # transaction two rows hold one chair and one patient's time.
    sessions = numbered(series)

    series_reflow(session=sessions[4], starts_at=datetime(2026, 1, 10, 10), now=now)

    after = numbered(Series.objects.get(pk=series.pk))
    assert [local(after[n]) for n in (4, 5, 6)] == [
        datetime(2026, 1, 10, 10), datetime(2026, 1, 11, 10), datetime(2026, 1, 12, 10)
    ]  # fmt: skip


def test_a_cancelled_session_is_made_up_under_its_number(now, series):
    sessions = numbered(series)
    session_cancel(session=sessions[3], reason="unwell", now=now)
    assert series_gaps(series_ids=[series.pk])[series.pk][0].text == "session 3 cancelled: rebook it"

    changed = series_reflow(session=sessions[3], starts_at=datetime(2026, 1, 9, 15), now=now)

    made = changed[0]
    assert (made.number, made.makeup_for_id, local(made)) == (3, sessions[3].pk, datetime(2026, 1, 9, 15))
    assert [s.number for s in changed] == [3, 4, 5, 6]
    assert series_gaps(series_ids=[series.pk]) == {}
    with pytest.raises(BookingConflict) as again:
        series_reflow(session=sessions[3], starts_at=datetime(2026, 1, 20, 10), now=now)
    assert again.value.code == "makeup_taken"


def test_a_make_up_after_a_long_absence_needs_only_the_shortest_gap(now, series):
    sessions = numbered(series)
    for number in (3, 4, 5, 6):
        session_cancel(session=sessions[number], reason="in hospital", now=now)
    late = now + timedelta(days=10)  # session 2 was on 7 Jan: its 4-day window has long passed

    changed = series_reflow(session=sessions[3], starts_at=datetime(2026, 1, 16, 10), now=late)

    assert [(s.number, local(s)) for s in changed] == [(3, datetime(2026, 1, 16, 10))]
    # The 9 days between sessions 2 and 3 can no longer be mended; the cancelled ones still can.
    assert [g.number for g in series_gaps(series_ids=[series.pk], now=late)[series.pk]] == [4, 5, 6]


# Rule 12: the gap report


def test_a_cancel_leaves_the_series_off_protocol_until_made_good(now, series):
    sessions = numbered(series)
    assert series_gaps(series_ids=[series.pk]) == {}

    session_cancel(session=sessions[5], reason="away", now=now)
    session_reschedule(session=sessions[6], starts_at=datetime(2026, 1, 12, 10), now=now)

    gaps = series_gaps(series_ids=[series.pk])[series.pk]
    assert [(g.number, g.text) for g in gaps] == [(5, "session 5 cancelled: rebook it")]


def test_a_cancelled_series_is_not_off_protocol(now, series):
    from sessions.services import series_cancel

    series_cancel(series=series, reason="stopped", now=now)

    assert series_gaps(series_ids=[series.pk]) == {}


# Rule 13: self-service notice


def test_self_service_notice_defaults_to_fasting_or_cancellation_notice(now, clinic, series, induction):
    session = numbered(series)[6]
    induction.fasting_hours = 36
    induction.save()
    session.refresh_from_db()

    assert self_service_earliest(session=session, now=now) == now + timedelta(hours=36)
    clinic.self_service_notice_hours = 4
    clinic.save()
    session.refresh_from_db()
    assert self_service_earliest(session=session, now=now) == now + timedelta(hours=4)


def test_a_patient_cannot_move_a_visit_inside_the_notice_but_staff_can(now, clinic, series):
    first = numbered(series)[1]
    soon = datetime(2026, 1, 5, 15)  # ten hours from now, inside the 24 h notice

    staff_slots = session_slots(session=first, days=14, now=now)
    own_slots = session_slots(session=first, days=14, now=now, self_service=True)
    assert min(s.starts_at for s in own_slots) >= now + timedelta(hours=24)
    assert len(own_slots) < len(staff_slots)
    with pytest.raises(BookingConflict) as refused:
        session_reschedule(session=numbered(series)[1], starts_at=soon, via=Session.Channel.LINK, now=now)
    assert refused.value.code == "short_notice"


# Rule 15: attendance


@pytest.fixture
def first(series):
    return numbered(series)[1]


def test_arrived_and_completed_record_the_chair_times(first):
    start = first.starts_at
    session_mark(session=first, status=Session.Status.ARRIVED, now=start - timedelta(minutes=10))
    out, later = start + timedelta(minutes=115), start + timedelta(hours=3)  # entered an hour after the fact
    done = session_mark(session=first, status=Session.Status.COMPLETED, at=out, now=later)

    assert (done.chair_in_at, done.chair_out_at) == (start - timedelta(minutes=10), start + timedelta(minutes=115))
    assert AuditEvent.objects.filter(session=first, action="completed").get().detail == "chair 09:50–11:55"


@pytest.mark.parametrize(
    ("status", "at", "entered"),
    [
        (Session.Status.ARRIVED, timedelta(hours=-5), timedelta(hours=-5)),  # long before the start
        (Session.Status.ARRIVED, timedelta(minutes=10), timedelta(minutes=5)),  # a time still to come
    ],
)
def test_attendance_times_that_cannot_be_true_are_refused(first, status, at, entered):
    with pytest.raises(BookingConflict) as refused:
        session_mark(session=first, status=status, at=first.starts_at + at, now=first.starts_at + entered)
    assert refused.value.code == "attendance_times"


def test_completed_needs_a_chair_out_after_chair_in(first):
    start = first.starts_at
    session_mark(session=first, status=Session.Status.ARRIVED, now=start + timedelta(minutes=5))

    with pytest.raises(BookingConflict) as refused:
        session_mark(session=first, status=Session.Status.COMPLETED, at=start, now=start + timedelta(minutes=30))
    assert refused.value.code == "attendance_times"


def test_each_mark_can_be_undone_and_the_undo_is_audited(first):
    start = first.starts_at
    session_mark(session=first, status=Session.Status.ARRIVED, now=start)
    session_mark(session=first, status=Session.Status.COMPLETED, now=start + timedelta(hours=2))

    back = session_undo(session=first, now=start + timedelta(hours=2, minutes=1))
    assert (back.status, back.chair_out_at) == (Session.Status.ARRIVED, None)
    back = session_undo(session=first, now=start + timedelta(hours=2, minutes=2))
    assert (back.status, back.chair_in_at) == (Session.Status.BOOKED, None)
    assert list(AuditEvent.objects.filter(session=first, action="undo").values_list("detail", flat=True)) == [
        "undo arrived",
        "undo completed",
    ]


def test_a_no_show_can_be_undone_when_the_patient_turns_up_late(first):
    session_mark(session=first, status=Session.Status.NO_SHOW, now=first.starts_at + timedelta(minutes=20))
    assert series_gaps(series_ids=[first.series_id])[first.series_id][0].number == 1

    back = session_undo(session=first, now=first.starts_at + timedelta(minutes=25))
    session_mark(session=back, status=Session.Status.ARRIVED, now=first.starts_at + timedelta(minutes=26))

    assert Session.objects.get(pk=first.pk).status == Session.Status.ARRIVED
    assert series_gaps(series_ids=[first.series_id]) == {}


def test_undoing_a_cancel_books_the_time_again_unless_it_was_taken(now, clinic, induction, series):
    sessions = numbered(series)
    session_cancel(session=sessions[2], reason="mistake", now=now)

    back = session_undo(session=sessions[2], now=now)
    assert (back.status, back.version) == (Session.Status.BOOKED, 2)

    session_cancel(session=sessions[3], reason="unwell", now=now)
    booster = protocol_make(clinic, kind="booster")
    for chair in clinic.chairs.all():  # others take every chair at session 3's old time
        series_book(
            patient=patient_make(clinic), protocol=booster, chair=chair, starts=[sessions[3].starts_at], now=now
        )
    with pytest.raises(BookingConflict) as refused:
        session_undo(session=sessions[3], now=now)
    assert refused.value.code == "chair_overlap"
    assert Session.objects.get(pk=sessions[3].pk).status == Session.Status.CANCELLED


def test_undoing_the_last_cancel_brings_a_cancelled_series_back(now, series):
    from sessions.services import series_cancel

    series_cancel(series=series, reason="stopped", now=now)
    assert Series.objects.get(pk=series.pk).status == Series.Status.CANCELLED

    session_undo(session=numbered_all(series)[1], now=now)

    assert Series.objects.get(pk=series.pk).status == Series.Status.ACTIVE


def numbered_all(series: Series) -> dict[int, Session]:
    return {s.number: s for s in series.sessions.all()}
