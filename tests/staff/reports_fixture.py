"""A week of one clinic with every kind of visit the reports count, and its figures worked out by
hand (in the tests that use it), so that a report's numbers are checked against arithmetic, not
against themselves."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from notifications.models import Channel, Message, Purpose
from sessions.models import Clinic, Protocol, Session
from tests.factories import clinic_make, protocol_make

from .builders import at, session_make

MONDAY = date(2026, 11, 2)
TUESDAY = MONDAY + timedelta(days=1)
SUNDAY = MONDAY + timedelta(days=6)
S = Session.Status


@dataclass
class ReportWeek:
    clinic: Clinic
    induction: Protocol
    pain: Protocol
    sessions: dict[str, Session]


def report_week() -> ReportWeek:
    """Phoenix (no DST), open 08:00–18:00 every day, two chairs, a 24 h cancellation notice.

    | visit | when | protocol | status | booked ahead | confirmed | attendance |
    |---|---|---|---|---|---|---|
    | s1 | Mon 09:00 chair 1 | induction | completed | 10 d | 48 h before | 09:05–11:00 |
    | s2 | Mon 09:00 chair 2 | induction | no-show | 10 d | no | |
    | s3 | Mon 13:00 chair 1 | induction | cancelled 2 h before (late) | 5 d | no | |
    | s4 | Tue 10:00 chair 1 | induction | cancelled 72 h before | 20 d | no | |
    | s5 | Tue 10:00 chair 2 | induction | arrived | 3 d | 12 h before | in 10:00 |
    | s6 | Tue 08:00 chair 1 | pain (5 h) | completed | 40 d | 30 h before | 08:00–13:00 |
    """
    clinic = clinic_make(opens=time(8), closes=time(18), chairs=2, cancellation_notice_hours=24)
    induction = protocol_make(clinic, kind="induction")
    pain = protocol_make(clinic, kind="pain")
    one, two = clinic.chairs.order_by("pk")

    def visit(day: date, hour: int, chair, protocol: Protocol, booked_days: int, **fields) -> Session:
        starts = at(clinic, day, hour)
        session = session_make(clinic, protocol, chair=chair, starts_at=starts, **fields)
        Session.objects.filter(pk=session.pk).update(created_at=starts - timedelta(days=booked_days))
        session.refresh_from_db()
        return session

    mon9, tue10, tue8 = at(clinic, MONDAY, 9), at(clinic, TUESDAY, 10), at(clinic, TUESDAY, 8)
    sessions = {
        "s1": visit(MONDAY, 9, one, induction, 10, status=S.COMPLETED, confirmed_at=mon9 - timedelta(hours=48),
                    chair_in_at=mon9 + timedelta(minutes=5), chair_out_at=at(clinic, MONDAY, 11)),
        "s2": visit(MONDAY, 9, two, induction, 10, status=S.NO_SHOW),
        "s3": visit(MONDAY, 13, one, induction, 5, status=S.CANCELLED,
                    status_changed_at=at(clinic, MONDAY, 11)),
        "s4": visit(TUESDAY, 10, one, induction, 20, status=S.CANCELLED,
                    status_changed_at=tue10 - timedelta(hours=72)),
        "s5": visit(TUESDAY, 10, two, induction, 3, status=S.ARRIVED, confirmed_at=tue10 - timedelta(hours=12),
                    chair_in_at=tue10),
        "s6": visit(TUESDAY, 8, one, pain, 40, status=S.COMPLETED, confirmed_at=tue8 - timedelta(hours=30),
                    chair_in_at=tue8, chair_out_at=at(clinic, TUESDAY, 13)),
    }  # fmt: skip
    outside = visit(SUNDAY + timedelta(days=1), 9, one, induction, 10, status=S.NO_SHOW)
    _reminders(sessions, outside)
    return ReportWeek(clinic, induction, pain, sessions)


def _reminders(sessions: dict[str, Session], outside: Session) -> None:
    """Reminders of the week's visits: texts delivered, failed, withdrawn and skipped, emails sent
    and skipped; plus a reminder of a visit outside the week and a booking confirmation, which
    the funnel leaves out."""
    M = Message.Status
    plan = [
        ("s1", Channel.SMS, M.DELIVERED, "", True),
        ("s1", Channel.EMAIL, M.SENT, "", True),
        ("s2", Channel.SMS, M.FAILED, "21211 invalid number", False),
        ("s3", Channel.SMS, M.CANCELLED, "session cancelled", False),
        ("s5", Channel.SMS, M.SKIPPED, "daily text limit (1) reached: sent by email instead", False),
        ("s5", Channel.EMAIL, M.SKIPPED, "no email address to send to", False),
        ("s6", Channel.SMS, M.SKIPPED, "quiet hours in the patient's time zone", False),
    ]
    rows = [
        reminder_make(sessions[name], channel, status, reason, went_out)
        for name, channel, status, reason, went_out in plan
    ]
    rows.append(reminder_make(outside, Channel.SMS, M.DELIVERED, "", True))
    rows.append(reminder_make(sessions["s1"], Channel.SMS, M.DELIVERED, "", True, purpose=Purpose.BOOKED))
    Message.objects.bulk_create(rows)


def reminder_make(
    session: Session, channel: str, status: str, reason: str, went_out: bool, *, purpose: str = Purpose.REMINDER
) -> Message:
    due = session.starts_at - timedelta(hours=24)
    sent: datetime | None = due if went_out else None
    return Message(
        session=session, clinic_id=session.clinic_id, patient=session.patient, purpose=purpose, key="24h",
        channel=channel, session_version=session.version, due_at=due, expires_at=session.starts_at, status=status,
        reason=reason, sending_started_at=sent, sent_at=sent,
    )  # fmt: skip
