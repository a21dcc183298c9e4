"""The reminder bench's data: a clinic of 1,000 patients with one upcoming session each, and
message rows for them written by SQL, so that a million rows take seconds, not minutes.

The clinic lets texts go out at any hour (window 00:00–23:59:59), so a run works whatever the
time. Every patient has a phone of their own: the caps count per patient, and the fake Twilio
can tell the texts apart.
"""

import time as clock
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.db import connection
from django.utils import timezone

from notifications.models import Message
from sessions.models import Chair, Clinic, Patient, Protocol, Series, Session

PATIENTS = 1_000
CHAIRS = 10
SESSION_MINUTES = 30


@dataclass(frozen=True)
class ReminderClinic:
    clinic: Clinic
    session_ids: list[int]


def reminder_clinic_build(*, patients: int = PATIENTS) -> ReminderClinic:
    """Patients with one booked session each, from tomorrow on, spread over the chairs hour by hour."""
    clinic = Clinic.objects.create(
        name="Reminder Bench Clinic",
        time_zone="America/Phoenix",
        phone="+14805550100",
        address="2 Bench Way, Phoenix AZ",
        sender_name="Desert Wellness",
        message_window_start=time(0),
        message_window_end=time(23, 59, 59),
    )
    protocol = Protocol.objects.create(
        clinic=clinic, name="Booster", patient_name="Wellness visit", session_count=1, chair_minutes=SESSION_MINUTES
    )
    chairs = Chair.objects.bulk_create(Chair(clinic=clinic, name=f"Chair {n:02d}") for n in range(1, CHAIRS + 1))
    people = Patient.objects.bulk_create(
        Patient(
            clinic=clinic,
            first_name="Pat",
            last_name=f"Reminder{n}",
            external_id=f"R{n:06d}",
            phone=f"+1480{n:07d}",
            email=f"reminder{n}@example.com",
        )
        for n in range(patients)
    )
    series = Series.objects.bulk_create(Series(patient=p, protocol=protocol, clinic=clinic) for p in people)
    first = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    length = timedelta(minutes=SESSION_MINUTES)
    sessions = Session.objects.bulk_create(
        Session(
            series=s,
            patient=s.patient,
            clinic=clinic,
            chair=chairs[n % CHAIRS],
            number=1,
            starts_at=(starts := first + timedelta(hours=n // CHAIRS)),
            ends_at=starts + length,
            chair_free_at=starts + length + timedelta(minutes=clinic.turnover_buffer_minutes),
        )
        for n, s in enumerate(series)
    )
    return ReminderClinic(clinic=clinic, session_ids=[s.pk for s in sessions])


def messages_empty() -> None:
    """Every message row and what hangs on it (links, flags, outbox), as at a fresh start."""
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {Message._meta.db_table} RESTART IDENTITY CASCADE")


def messages_load(bench: ReminderClinic, *, numbers: range, due: int, now: datetime, key: str = "bench") -> float:
    """SMS reminder rows numbered `numbers`, round-robin over the clinic's sessions: those numbered
    below `due` fell due in the hour before `now`, the rest fall due over the next 30 days.
    Returns the seconds it took."""
    began = clock.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(_LOAD_SQL.format(
            message=Message._meta.db_table, session=Session._meta.db_table, patient=Patient._meta.db_table
        ), {
            "first": numbers.start, "last": numbers.stop - 1, "due": due, "now": now, "key": f"{key}-",
            "sessions": bench.session_ids,
        })  # fmt: skip
    return clock.perf_counter() - began


def messages_analyze() -> None:
    """The planner's statistics and the visibility map after a bulk load, as autovacuum would."""
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {Message._meta.db_table}")


def messages_vacuum() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM {Message._meta.db_table}")


# Sessions are taken by row number, so a million rows spread evenly over a thousand sessions;
# `key` tells the rows of one session apart, as the rule does for real reminders.
_LOAD_SQL = """
WITH sessions AS (
    SELECT ordinal - 1 AS n, s.id, s.clinic_id, s.patient_id, s.version, s.starts_at, p.phone
    FROM unnest(%(sessions)s::bigint[]) WITH ORDINALITY AS picked(id, ordinal)
    JOIN {session} s ON s.id = picked.id
    JOIN {patient} p ON p.id = s.patient_id
)
INSERT INTO {message} (
    session_id, clinic_id, patient_id, purpose, key, channel, session_version, due_at, expires_at, status, reason,
    attempts, recipient, body_redacted, provider_error, created_at, updated_at
)
SELECT s.id, s.clinic_id, s.patient_id, 'reminder', %(key)s || g, 'sms', s.version,
       CASE WHEN g < %(due)s THEN %(now)s - interval '1 second' * (1 + g %% 3600)
            ELSE %(now)s + interval '1 minute' * (1 + g %% 43200) END,
       s.starts_at, 'planned', '', 0, s.phone, '', '', %(now)s, %(now)s
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
JOIN sessions s ON s.n = g %% (SELECT count(*) FROM sessions)
"""
