"""Builders for the staff pages' tests: users in a role, and days of sessions written directly,
so a test can hold a full board without booking 80 series one by one."""

from datetime import UTC, date, datetime, time, timedelta

from django.contrib.auth.models import Group, User
from django.test import Client

from notifications.models import Channel, Message, Purpose
from sessions.clock import wall_clock
from sessions.models import Chair, Clinic, Patient, Protocol, Series, Session
from tests.factories import clinic_make, patient_make, staffing_make

PASSWORD = "staff-test-password"
# The browser tests drive Debian's Chromium.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def staff_user(role: str, *, clinics: tuple[Clinic, ...] = (), username: str | None = None) -> User:
    """A user in one of the roles' groups; `clinics` limits them through "clinic:<id>" groups."""
    user = User.objects.create_user(username=username or role.lower().replace(" ", "_"), password=PASSWORD)
    user.groups.add(Group.objects.get(name=role))
    for clinic in clinics:
        user.groups.add(Group.objects.get_or_create(name=f"clinic:{clinic.pk}")[0])
    return user


def client_as(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def at(clinic: Clinic, day: date, hour: int, minute: int = 0) -> datetime:
    return wall_clock(day, time(hour, minute), clinic.zone)


def session_make(
    clinic: Clinic,
    protocol: Protocol,
    *,
    chair: Chair,
    starts_at: datetime,
    patient: Patient | None = None,
    number: int = 1,
    **fields,
) -> Session:
    """A session written directly, skipping the booking rules: a fixture, not a booking."""
    patient = patient or patient_make(clinic)
    series = Series.objects.create(patient=patient, protocol=protocol, clinic=clinic)
    ends_at = starts_at + timedelta(minutes=protocol.chair_minutes)
    return Session.objects.create(
        series=series,
        patient=patient,
        clinic=clinic,
        chair=chair,
        number=number,
        starts_at=starts_at,
        ends_at=ends_at,
        chair_free_at=ends_at + timedelta(minutes=clinic.turnover_buffer_minutes),
        **fields,
    )


def day_of_sessions(clinic: Clinic, protocol: Protocol, day: date, count: int, *, first_hour: int = 7) -> list[Session]:
    """`count` sessions of `day`, four a chair at most, every fifth with a failed text."""
    chairs = list(clinic.chairs.order_by("pk"))
    gap = timedelta(minutes=protocol.chair_minutes + clinic.turnover_buffer_minutes + 15)
    sessions = []
    for n in range(count):
        chair, turn = chairs[n % len(chairs)], n // len(chairs)
        sessions.append(
            session_make(
                clinic,
                protocol,
                chair=chair,
                starts_at=at(clinic, day, first_hour) + turn * gap,
                number=1,
                status=Session.Status.CONFIRMED if n % 3 == 0 else Session.Status.BOOKED,
                confirmed_at=at(clinic, day, 0) - timedelta(days=1) if n % 3 == 0 else None,
            )
        )
    Message.objects.bulk_create(
        Message(
            session=s,
            clinic_id=s.clinic_id,
            patient=s.patient,
            purpose=Purpose.REMINDER,
            key="24h",
            channel=Channel.SMS,
            session_version=1,
            due_at=s.starts_at - timedelta(hours=24),
            expires_at=s.starts_at,
            status=Message.Status.FAILED,
            reason="21211 invalid number",
        )
        for s in sessions[::5]
    )
    return sessions


def clinic_at_midday(**fields) -> Clinic:
    """A clinic, open all day, whose wall clock reads between 12:00 and 13:00 now: a test can
    then place this morning's sessions and their chair-in and chair-out times on one day, in the
    past, whenever it runs."""
    offset = 12 - datetime.now(UTC).hour  # hours east of UTC, -11 to +12
    # The Etc zones are named the POSIX way: "Etc/GMT-3" is three hours east of UTC.
    clinic = clinic_make(time_zone=f"Etc/GMT{-offset:+d}", opens=time(0), closes=time(23, 59), chairs=2, **fields)
    staffing_make(clinic, nurses=2, per_nurse=3)
    return clinic


def wall(day: date, hour: int, minute: int = 0) -> str:
    """A datetime-local value, as the browser sends it."""
    return datetime.combine(day, time(hour, minute)).isoformat(timespec="minutes")
