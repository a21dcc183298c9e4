"""Races between separate database connections, released together. PostgreSQL only: SQLite has
one writer and no exclusion constraints, so there is nothing to race there."""

import threading
from collections import Counter
from datetime import datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction

from sessions.calendar import BookingConflict
from sessions.models import Session
from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.concurrency,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs PostgreSQL: exclusion constraints and row locks"
    ),
]

ATTEMPTS = 20


def race(attempts: list) -> Counter:
    """Run each attempt in its own thread (so its own connection), all released at once."""
    gate = threading.Barrier(len(attempts))
    outcomes: Counter = Counter()
    lock = threading.Lock()

    def run(attempt) -> None:
        try:
            gate.wait()
            attempt()
            outcome = "booked"
        except BookingConflict as exc:
            outcome = exc.code
        finally:
            connection.close()
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=run, args=(a,)) for a in attempts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


def overlapping_pairs(on: str) -> int:
    """Pairs of holding sessions that overlap on the same chair or patient, counted by SQL."""
    end = "chair_free_at" if on == "chair_id" else "ends_at"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT count(*) FROM booking_session a JOIN booking_session b
                ON a.{on} = b.{on} AND a.id < b.id
               AND a.starts_at < b.{end} AND b.starts_at < a.{end}
             WHERE a.status = ANY(%s) AND b.status = ANY(%s)""",
            [list(Session.HOLDING), list(Session.HOLDING)],
        )
        return cursor.fetchone()[0]


def in_two_days() -> datetime:
    return (datetime.now() + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)


def test_twenty_bookings_of_one_chair_and_time_give_exactly_one_session():
    clinic = clinic_make(chairs=2)
    booster = protocol_make(clinic, kind="booster")
    chair = clinic.chairs.first()
    patients = [patient_make(clinic) for _ in range(ATTEMPTS)]
    start = in_two_days()

    outcomes = race(
        [lambda p=p: series_book(patient=p, protocol=booster, starts=[start], chair=chair) for p in patients]
    )

    assert outcomes == Counter({"booked": 1, "chair_overlap": ATTEMPTS - 1})
    assert Session.objects.filter(chair=chair).count() == 1
    assert overlapping_pairs("chair_id") == 0


def test_twenty_bookings_of_one_patient_on_two_clinics_chairs_give_exactly_one_session():
    clinics = [clinic_make(chairs=2), clinic_make(chairs=2)]
    boosters = [protocol_make(c, kind="booster") for c in clinics]
    patient = patient_make(clinics[0])
    start = in_two_days()

    outcomes = race(
        [lambda n=n: series_book(patient=patient, protocol=boosters[n % 2], starts=[start]) for n in range(ATTEMPTS)]
    )

    assert outcomes["booked"] == 1
    assert outcomes["patient_overlap"] == ATTEMPTS - 1
    assert Session.objects.filter(patient=patient).count() == 1
    assert overlapping_pairs("patient_id") == 0


def test_the_database_refuses_an_overlap_that_bypasses_the_service():
    clinic = clinic_make(chairs=1, buffer_minutes=15)
    booster = protocol_make(clinic, kind="booster")
    start = in_two_days()
    first = series_book(patient=patient_make(clinic), protocol=booster, starts=[start]).sessions.get()
    other = series_book(patient=patient_make(clinic), protocol=booster, starts=[start + timedelta(hours=3)])

    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.create(
            series=other,
            patient=other.patient,
            clinic=clinic,
            chair=first.chair,
            number=2,
            starts_at=first.ends_at + timedelta(minutes=10),  # inside the 15-minute turnover
            ends_at=first.ends_at + timedelta(hours=1),
            chair_free_at=first.ends_at + timedelta(hours=1, minutes=15),
        )
    assert overlapping_pairs("chair_id") == 0
