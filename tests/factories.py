"""Small builders for the booking domain, with the defaults a test would otherwise repeat."""

from datetime import time
from itertools import count

from sessions.models import Chair, Clinic, OpeningHours, Patient, Protocol, StaffingBlock

_serial = count(1)


def clinic_make(
    *,
    time_zone: str = "America/Phoenix",
    opens: time = time(8),
    closes: time = time(18),
    weekdays: range = range(7),
    chairs: int = 2,
    buffer_minutes: int = 0,
    **fields,
) -> Clinic:
    n = next(_serial)
    values = dict(
        name=f"Clinic {n}",
        phone="+16025550100",
        address="1 Main St",
        sender_name="Desert Wellness",
    )
    clinic = Clinic.objects.create(time_zone=time_zone, turnover_buffer_minutes=buffer_minutes, **{**values, **fields})
    for weekday in weekdays:
        OpeningHours.objects.create(clinic=clinic, weekday=weekday, opens=opens, closes=closes)
    for number in range(1, chairs + 1):
        Chair.objects.create(clinic=clinic, name=f"Chair {number}")
    return clinic


def staffing_make(clinic: Clinic, *, nurses: int, per_nurse: int, starts: time = time(0), ends: time = time(23, 59)):
    for weekday in range(7):
        StaffingBlock.objects.create(
            clinic=clinic, weekday=weekday, starts=starts, ends=ends, nurses=nurses, patients_per_nurse=per_nurse
        )


def protocol_make(clinic: Clinic, *, kind: str = "induction", **fields) -> Protocol:
    presets = {
        "induction": dict(
            name="Depression induction", session_count=6, chair_minutes=120, min_gap_days=1, max_gap_days=4
        ),
        "pain": dict(name="Pain course", session_count=5, chair_minutes=300, min_gap_days=1, max_gap_days=1),
        "booster": dict(name="Booster", session_count=1, chair_minutes=120, min_gap_days=1, max_gap_days=1),
    }
    values = {**presets[kind], "patient_name": "Wellness visit", **fields}
    return Protocol.objects.create(clinic=clinic, **values)


def patient_make(clinic: Clinic, **fields) -> Patient:
    n = next(_serial)
    values = dict(
        first_name="Pat",
        last_name=f"Example{n}",
        external_id=f"MRN{n:05d}",
        phone=f"+1602555{n % 100:04d}",
        email=f"pat{n}@example.com",
    )
    return Patient.objects.create(clinic=clinic, **{**values, **fields})
