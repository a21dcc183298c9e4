"""Staff hear what patients do (rule 14) and see a series off its protocol (rule 12): inbox tasks
with the session and the next step, raised once, closed by the system when their cause goes."""

from datetime import datetime, timedelta
from itertools import count

import pytest
from django.test import Client
from django.utils import timezone

from notifications import tasks
from notifications.inbound import Incoming, inbound_handle
from notifications.links import link_create
from notifications.models import StaffFlag
from notifications.staff_tasks import driver_tasks_raise
from sessions.models import AuditEvent, Series, Session
from sessions.services import (
    series_book,
    series_cancel,
    series_reflow,
    session_cancel,
    session_confirm,
    session_mark,
    session_reschedule,
    session_undo,
)
from tests.factories import clinic_make, patient_make, protocol_make
from tests.notifications.conftest import always_open_clinic
from tests.notifications.test_patient_link import an_address, book, days_ahead, offered_starts, url

pytestmark = pytest.mark.django_db

Kind = StaffFlag.Kind
_sids = count(1)


def open_tasks(kind: str, **where) -> list[StaffFlag]:
    return list(StaffFlag.objects.filter(kind=kind, handled_at=None, **where))


def closed_by_the_system(flag: StaffFlag) -> bool:
    flag.refresh_from_db()
    said = f"{flag.get_kind_display()}: "
    audited = AuditEvent.objects.filter(
        patient=flag.patient_id, action="flag handled", via=AuditEvent.Via.SYSTEM, detail__startswith=said
    )
    return flag.handled_at is not None and flag.handled_by is None and audited.exists()


def clinic_day(session: Session) -> str:
    local = session.starts_at.astimezone(session.clinic.zone)
    return f"{local:%a} {local.day} {local:%b %H:%M}"


@pytest.fixture
def series(now) -> Series:
    """Six daily induction sessions from Tue 6 Jan 2026 at 10:00, Phoenix (now: Mon 5 Jan 05:00)."""
    clinic = clinic_make(chairs=2)
    induction = protocol_make(clinic, kind="induction")
    return series_book(patient=patient_make(clinic), protocol=induction, first_start=datetime(2026, 1, 6, 10), now=now)


def numbered(series: Series) -> dict[int, Session]:
    return {s.number: s for s in series.sessions.filter(status__in=Session.HOLDING)}


# Patient actions on the link


@pytest.fixture
def link_visit():
    """Session 3 of six, two days apart from three days on, and its link."""
    clinic = clinic_make(chairs=2)
    sessions = book(patient_make(clinic), protocol_make(clinic), [days_ahead(clinic, 3 + 2 * n) for n in range(6)])
    return sessions[2], link_create(session=sessions[2])


def test_a_cancel_on_the_link_asks_staff_to_rebook_once(link_visit):
    session, token = link_visit
    patient = Client(REMOTE_ADDR=an_address())

    patient.post(url(token), {"action": "cancel"})
    patient.post(url(token), {"action": "cancel"})

    [task] = StaffFlag.objects.filter(kind=Kind.PATIENT_CANCELLED)
    assert (task.session_id, task.series_id, task.clinic_id) == (session.pk, session.series_id, session.clinic_id)
    assert task.detail == f"Cancelled session 3 of 6 ({clinic_day(session)}) on the link"
    assert task.next_step == "Rebook session 3 (make-up) or re-flow the series"
    [gap] = open_tasks(Kind.SERIES_OFF_PROTOCOL)
    assert (gap.series_id, gap.detail, gap.next_step) == (
        session.series_id, "session 3 cancelled: rebook it", "Re-flow from session 3",
    )  # fmt: skip


def test_a_cancel_by_staff_raises_no_patient_task(now, series):
    session_cancel(session=numbered(series)[3], reason="clinic closed", now=now)

    assert not StaffFlag.objects.filter(kind=Kind.PATIENT_CANCELLED).exists()
    assert len(open_tasks(Kind.SERIES_OFF_PROTOCOL)) == 1


@pytest.fixture
def tomorrows_visit():
    """A one-visit protocol tomorrow at 10:00, which the patient may move with an hour's notice."""
    clinic = clinic_make(chairs=2, self_service_notice_hours=1)
    [session] = book(patient_make(clinic), protocol_make(clinic, kind="booster"), [days_ahead(clinic, 1)])
    return session, link_create(session=session)


def offered_on(token: str, day: int, clinic) -> list[str]:
    starts = offered_starts(Client(REMOTE_ADDR=an_address()).get(url(token) + "?step=move"))
    wanted = days_ahead(clinic, day).astimezone(clinic.zone).date()
    return [value for value in starts if datetime.fromisoformat(value).date() == wanted]


def test_a_move_on_the_link_from_or_to_the_next_48_hours_asks_staff_once(tomorrows_visit):
    session, token = tomorrows_visit
    clinic = session.clinic
    patient = Client(REMOTE_ADDR=an_address())

    patient.post(url(token), {"action": "move", "starts_at": offered_on(token, 5, clinic)[0]})
    moved = Session.objects.get(pk=session.pk)
    patient.post(url(token), {"action": "move", "starts_at": offered_on(token, 1, clinic)[-1]})  # and back

    [task] = StaffFlag.objects.filter(kind=Kind.LATE_MOVE)
    assert task.session_id == session.pk
    assert task.detail == (
        f"Moved session 1 of 1 from {clinic_day(session)} to {clinic_day(moved)} on the link, inside 48 hours"
    )
    assert task.next_step
    assert Session.objects.get(pk=session.pk).starts_at < timezone.now() + timedelta(hours=48)


def test_a_move_far_from_now_or_by_staff_raises_no_task(tomorrows_visit):
    session, token = tomorrows_visit
    clinic = session.clinic
    [later] = book(patient_make(clinic), protocol_make(clinic, kind="booster", name="B2"), [days_ahead(clinic, 5)])
    later_token = link_create(session=later)

    Client(REMOTE_ADDR=an_address()).post(
        url(later_token), {"action": "move", "starts_at": offered_on(later_token, 7, clinic)[0]}
    )
    session_reschedule(session=session, starts_at=days_ahead(clinic, 1, hour=14))

    assert Session.objects.get(pk=later.pk).starts_at > later.starts_at
    assert not StaffFlag.objects.filter(kind=Kind.LATE_MOVE).exists()


# Attendance and the series' gaps


def test_a_no_show_asks_staff_to_follow_up_and_an_undo_takes_it_back(now, series):
    first = numbered(series)[1]
    after = first.starts_at + timedelta(hours=1)

    session_mark(session=first, status=Session.Status.NO_SHOW, now=after)

    [task] = open_tasks(Kind.NO_SHOW)
    assert task.session_id == first.pk
    assert task.detail == "No-show at session 1 of 6 (Tue 6 Jan 10:00)"
    assert task.next_step.startswith("Follow up with the patient")
    [gap] = open_tasks(Kind.SERIES_OFF_PROTOCOL)
    assert gap.detail == "session 1 missed: rebook it"

    session_undo(session=first, now=after)

    assert closed_by_the_system(task) and closed_by_the_system(gap)
    session_mark(session=first, status=Session.Status.NO_SHOW, now=after)
    assert len(open_tasks(Kind.NO_SHOW)) == 1 and len(open_tasks(Kind.SERIES_OFF_PROTOCOL)) == 1


def test_the_gap_task_is_one_per_series_and_closes_itself_when_a_re_flow_restores_the_protocol(now, series):
    sessions = numbered(series)
    session_cancel(session=sessions[3], reason="unwell", now=now)
    session_cancel(session=sessions[5], reason="away", now=now)

    [gap] = open_tasks(Kind.SERIES_OFF_PROTOCOL)
    assert gap.detail == "session 3 cancelled: rebook it; session 5 cancelled: rebook it"
    assert gap.next_step == "Re-flow from session 3"

    series_reflow(session=sessions[3], starts_at=datetime(2026, 1, 8, 10), now=now)  # make-up in its place
    [still] = open_tasks(Kind.SERIES_OFF_PROTOCOL)
    assert still.pk == gap.pk and still.next_step == "Re-flow from session 5"

    series_reflow(session=sessions[5], starts_at=datetime(2026, 1, 10, 10), now=now)

    assert closed_by_the_system(gap)
    assert StaffFlag.objects.filter(kind=Kind.SERIES_OFF_PROTOCOL).count() == 1


def test_a_make_up_closes_the_patients_cancel_task(now, series):
    third = numbered(series)[3]
    session_cancel(session=third, reason="on the link", via=Session.Channel.LINK, now=now)
    [task] = open_tasks(Kind.PATIENT_CANCELLED)

    series_reflow(session=third, starts_at=datetime(2026, 1, 8, 14), now=now)

    assert closed_by_the_system(task)


def test_cancelling_the_whole_series_closes_its_gap_task(now, series):
    session_cancel(session=numbered(series)[3], reason="unwell", now=now)
    [gap] = open_tasks(Kind.SERIES_OFF_PROTOCOL)

    series_cancel(series=series, reason="stopped treatment", now=now)

    assert closed_by_the_system(gap)


# Drivers at T-24 h


def test_the_driver_check_raises_one_task_per_visit_without_a_driver_within_a_day(now, series):
    clinic = series.clinic
    check = now + timedelta(hours=11)  # Mon 5 Jan 16:00 in Phoenix: the day ahead holds every first visit
    confirmed = series_book(
        patient=patient_make(clinic), protocol=series.protocol, first_start=datetime(2026, 1, 6, 12), now=now
    )
    session_confirm(session=numbered(confirmed)[1], via=Session.Channel.LINK, driver_confirmed=True, now=now)
    no_driver_needed = protocol_make(clinic, kind="booster", driver_required=False)
    series_book(patient=patient_make(clinic), protocol=no_driver_needed, starts=[datetime(2026, 1, 6, 14)], now=now)

    driver_tasks_raise(now=check)
    driver_tasks_raise(now=check)

    [task] = StaffFlag.objects.filter(kind=Kind.DRIVER_UNCONFIRMED)
    assert task.session_id == numbered(series)[1].pk
    assert task.detail == "No driver confirmed for session 1 of 6 (Tue 6 Jan 10:00)"
    assert task.next_step == "Call the patient to confirm who drives them home"


def test_a_handled_driver_task_is_not_raised_again_and_a_confirmed_driver_closes_it(now, series):
    check = now + timedelta(hours=11)
    driver_tasks_raise(now=check)
    [task] = open_tasks(Kind.DRIVER_UNCONFIRMED)
    StaffFlag.objects.filter(pk=task.pk).update(handled_at=check)

    driver_tasks_raise(now=check + timedelta(minutes=1))
    assert not open_tasks(Kind.DRIVER_UNCONFIRMED)

    second = numbered(series)[2]
    driver_tasks_raise(now=check + timedelta(days=1))
    [task] = open_tasks(Kind.DRIVER_UNCONFIRMED)
    assert task.session_id == second.pk
    session_confirm(session=second, via=Session.Channel.SMS, driver_confirmed=True, now=check + timedelta(days=1))
    driver_tasks_raise(now=check + timedelta(days=1, minutes=1))
    assert closed_by_the_system(task)


def test_the_reminder_tick_runs_the_driver_check():
    clinic = always_open_clinic()
    [session] = book(patient_make(clinic), protocol_make(clinic, kind="booster"), [days_ahead(clinic, 0, hour=12)])

    tasks.reminder_tick()

    assert [t.session_id for t in open_tasks(Kind.DRIVER_UNCONFIRMED)] == [session.pk]


# Texts


def texted(patient, body: str, now: datetime) -> None:
    incoming = Incoming(sid=f"SM{next(_sids):032d}", from_number=patient.phone, to_number="+16025550199", body=body)
    inbound_handle(incoming=incoming, now=now)


def test_stop_with_visits_ahead_asks_staff_once_on_the_next_visit(now, series):
    patient = series.patient

    texted(patient, "STOP", now)
    texted(patient, "stop texting me", now + timedelta(minutes=5))

    [task] = StaffFlag.objects.filter(kind=Kind.OPTED_OUT)
    assert (task.patient_id, task.session_id) == (patient.pk, numbered(series)[1].pk)
    assert task.detail == "Opted out of texts with 6 visits ahead (next: session 1 of 6, Tue 6 Jan 10:00)"
    assert task.next_step


def test_stop_without_visits_ahead_or_said_as_cancel_raises_no_opt_out_task(now, series):
    texted(patient_make(series.clinic), "STOP", now)
    texted(series.patient, "CANCEL", now)

    assert not StaffFlag.objects.filter(kind=Kind.OPTED_OUT).exists()
    assert StaffFlag.objects.filter(kind=Kind.CANCEL_WORD, patient=series.patient).count() == 1
