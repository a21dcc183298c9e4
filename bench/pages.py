"""Staff pages: the day board of a clinic with 24 chairs and 80 sessions a day, its week view, a
patient page with two series and their messages, and the book-a-series page with a 6-session
preview, rendered through the whole Django stack (middleware, auth, templates) by the test
client, DEBUG off."""

from datetime import date, datetime, time, timedelta

from django.contrib.auth.models import Group as UserGroup
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from sessions.models import Chair, Clinic, OpeningHours, Patient, Protocol, Series, Session
from sessions.services import series_book

from .measure import Group, Options, Row, Target, time_calls

SESSIONS = 80
CHAIRS = 24
TARGET_MS = 150


def page_benchmarks(options: Options) -> Group:
    clinic, protocol, day, patient = _clinic_with_a_full_day()
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(_scheduler())
    board = f"/staff/board/{clinic.pk}/?date={day.isoformat()}"
    week = f"/staff/board/{clinic.pk}/week/?date={day.isoformat()}"
    record = f"/staff/patients/{_patient_with_a_history(protocol, patient, day).pk}/"
    first_start = datetime.combine(day + timedelta(days=7), time(9)).strftime("%Y-%m-%dT%H:%M")
    preview = {"protocol": protocol.pk, "first_start": first_start, "action": "preview"}
    # 18:00 leaves one hour before closing: the preview refuses it and searches for alternatives.
    late_start = datetime.combine(day + timedelta(days=7), time(18)).strftime("%Y-%m-%dT%H:%M")
    refused = {**preview, "first_start": late_start}
    booking_page = f"/staff/book/{patient.pk}/"

    def get_board():
        return lambda: _status(client.get(board))

    def post_preview():
        return lambda: _status(client.post(booking_page, preview))

    def post_refused_preview():
        return lambda: _status(client.post(booking_page, refused))

    def get_week():
        return lambda: _status(client.get(week))

    def get_record():
        return lambda: _status(client.get(record))

    group = Group(title="Staff pages", description="")
    for name, prepare in (
        (f"day board: {CHAIRS} chairs, {SESSIONS} sessions", get_board),
        (f"week view: 7 days of {SESSIONS} sessions", get_week),
        ("patient page: 2 series, 12 sessions and their messages", get_record),
        ("book a series: preview of a 6-session induction", post_preview),
        ("book a series: a refused preview and the alternatives it offers", post_refused_preview),
    ):
        samples = time_calls(prepare, count=min(options.iterations, 100), warmup=options.warmup)
        for outcome, timings in samples.items():
            group.rows.append(Row(f"{name} ({outcome})", timings, Target(median_ms=TARGET_MS)))
    group.description = (
        "GETs of the day board, the week view and a patient page, and the POSTs of the booking preview "
        "(one that fits, one refused, which tries up to 16 nearby first starts for the alternatives it offers), "
        "through Django's test client: URL routing, middleware, session auth, permissions, queries and "
        "template rendering, DEBUG off."
    )
    return group


def _clinic_with_a_full_day() -> tuple[Clinic, Protocol, date, Patient]:
    clinic = Clinic.objects.create(
        name="Pages clinic", time_zone="America/Phoenix", phone="+16025550100", address="1 Main St",
        sender_name="Desert Bloom", turnover_buffer_minutes=15,
    )  # fmt: skip
    OpeningHours.objects.bulk_create(
        OpeningHours(clinic=clinic, weekday=d, opens=time(7), closes=time(19)) for d in range(7)
    )
    chairs = Chair.objects.bulk_create(Chair(clinic=clinic, name=f"Chair {n:02d}") for n in range(1, CHAIRS + 1))
    protocol = Protocol.objects.create(
        clinic=clinic, name="Depression induction", patient_name="Wellness series", session_count=6,
        chair_minutes=120, min_gap_days=1, max_gap_days=4,
    )  # fmt: skip
    day = timezone.now().astimezone(clinic.zone).date() + timedelta(days=2)
    patients = Patient.objects.bulk_create(
        Patient(
            clinic=clinic, first_name="Page", last_name=f"Patient {n}", external_id=f"P{n}", phone=f"+1602555{n:04d}"
        )
        for n in range(SESSIONS * 7 + 1)
    )
    # The board's day and the six around it, each as full: the week view shows all seven.
    for days_off, offset in enumerate(range(-3, 4)):
        for n in range(SESSIONS):
            patient = patients[days_off * SESSIONS + n]
            chair = chairs[n % CHAIRS]
            starts = datetime.combine(day + timedelta(days=offset), time(7), tzinfo=clinic.zone) + timedelta(
                hours=2.5 * (n // CHAIRS) + 0.25 * (n % 2)
            )
            series = Series.objects.create(patient=patient, protocol=protocol, clinic=clinic)
            ends = starts + timedelta(hours=2)
            Session.objects.create(series=series, patient=patient, clinic=clinic, chair=chair, number=1,
                                   starts_at=starts, ends_at=ends, chair_free_at=ends + timedelta(minutes=15),
                                   status="confirmed" if n % 3 else "booked")  # fmt: skip
    return clinic, protocol, day, patients[-1]


def _patient_with_a_history(protocol: Protocol, patient: Patient, day: date) -> Patient:
    """Two series of six, booked through the service: their sessions, moves and planned messages."""
    for weeks in (3, 6):
        series_book(
            patient=patient, protocol=protocol, first_start=datetime.combine(day + timedelta(weeks=weeks), time(17)),
            override_reason="bench: a second course" if weeks == 6 else "",
        )  # fmt: skip
    return patient


def _scheduler() -> User:
    user, _ = User.objects.get_or_create(username="pages-bench", defaults={"is_staff": True})
    user.groups.add(UserGroup.objects.get(name="Scheduler"))
    return user


def _status(response) -> str:
    return "ok" if response.status_code in (200, 302) else f"status {response.status_code}"
