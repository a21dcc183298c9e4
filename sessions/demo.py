"""A demo clinic for `make run`: configuration, a staff login, patients and booked series, and
four weeks of past visits (sessions/demo_history.py) for the Reports page.

Every row is looked up by its natural key before it is created, so seeding twice changes
nothing. Series are booked through `series_book`, like any other booking, so they obey the
rules and reach every listener; the past is written directly, once, as the rules refuse it.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from .calendar import BookingConflict
from .clock import local_date
from .demo_history import demo_history_seed
from .models import Chair, Clinic, OpeningHours, Patient, Protocol, Session, StaffingBlock, Weekday
from .services import series_book, session_mark
from .waitlist import waitlist_join

DEMO_USERNAME = "demo"
# Printed by `make run`: a login for a local demo, never a deployed one.
DEMO_PASSWORD = "demo-clinic-2026"
CLINIC_NAME = "Desert Bloom Wellness"

_OPEN_DAYS = (Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY, Weekday.THURSDAY, Weekday.FRIDAY, Weekday.SATURDAY)
_PREPARATION = (
    "Nothing to eat for 6 hours before your visit; clear fluids until 2 hours before. "
    "Take your usual medicines unless told otherwise. Bring someone to drive you home: "
    "you may not drive for 24 hours after the visit."
)
_PREPARATION_ES = (
    "No coma nada durante las 6 horas antes de su cita; puede tomar líquidos claros hasta 2 horas antes. "
    "Tome sus medicamentos habituales salvo que le indiquen lo contrario. Venga con alguien que le lleve "
    "a casa: no podrá conducir durante las 24 horas siguientes."
)
_PROTOCOLS: dict[str, dict] = {
    "Depression induction": dict(
        patient_name="Wellness series",
        patient_name_es="Serie de bienestar",
        preparation_instructions_es=_PREPARATION_ES,
        session_count=6,
        chair_minutes=120,
        min_gap_days=1,
        max_gap_days=4,
        fasting_hours=6,
        driver_required=True,
        preparation_instructions=_PREPARATION,
    ),
    "Pain course": dict(
        patient_name="Comfort course",
        patient_name_es="Curso de confort",
        preparation_instructions_es=_PREPARATION_ES,
        session_count=5,
        chair_minutes=300,
        min_gap_days=1,
        max_gap_days=1,
        fasting_hours=6,
        driver_required=True,
        preparation_instructions=_PREPARATION,
    ),
    "Booster": dict(
        patient_name="Follow-up visit",
        patient_name_es="Visita de seguimiento",
        preparation_instructions_es=_PREPARATION_ES,
        session_count=1,
        chair_minutes=120,
        fasting_hours=6,
        driver_required=True,
        preparation_instructions=_PREPARATION,
        # Offered again four weeks after the last visit.
        booster_interval_days=28,
    ),
}


@dataclass(frozen=True)
class DemoPatient:
    first_name: str
    last_name: str
    mrn: str
    phone: str
    email: str
    language: str = "en"
    # Which protocol to book, the weekday of the first session and its clinic wall-clock time.
    protocol: str | None = None
    weekday: int = Weekday.MONDAY
    at: time = time(9)


_PATIENTS = (
    DemoPatient("Avery", "Lane", "DB-1001", "+16025550101", "avery.lane@example.com", protocol="Depression induction"),
    # Five consecutive days need a Monday or Tuesday start: the clinic is closed on Sundays.
    DemoPatient(
        "Jordan", "Reyes", "DB-1002", "+16025550102", "jordan.reyes@example.com", protocol="Pain course", at=time(11)
    ),
    DemoPatient(
        "Morgan",
        "Ellis",
        "DB-1003",
        "+16025550103",
        "morgan.ellis@example.com",
        protocol="Booster",
        weekday=Weekday.TUESDAY,
    ),
    DemoPatient(
        "Lucía",
        "Herrera",
        "DB-1004",
        "+16025550104",
        "lucia.herrera@example.com",
        language="es",
        protocol="Depression induction",
        weekday=Weekday.WEDNESDAY,
        at=time(13),
    ),
    # No series yet: someone to book from the API or the admin.
    DemoPatient("Casey", "Brooks", "DB-1005", "+16025550105", "casey.brooks@example.com"),
    DemoPatient(
        "Riley",
        "Nguyen",
        "DB-1006",
        "+16025550106",
        "riley.nguyen@example.com",
        protocol="Booster",
        weekday=Weekday.THURSDAY,
        at=time(10),
    ),
)


# Today's visits, so that the first screen (today's board) is busy at any hour: booster visits
# through the day, with the marks a nurse would have made by now.
_TODAY = (
    DemoPatient("Jamie", "Ortiz", "DB-1101", "+16025550111", "jamie.ortiz@example.com", protocol="Booster",
                at=time(8, 30)),
    DemoPatient("Sam", "Whitaker", "DB-1102", "+16025550112", "sam.whitaker@example.com", protocol="Booster",
                at=time(10)),
    DemoPatient("Alex", "Moreno", "DB-1103", "+16025550113", "alex.moreno@example.com", language="es",
                protocol="Booster", at=time(11, 30)),
    DemoPatient("Drew", "Patel", "DB-1104", "+16025550114", "drew.patel@example.com", protocol="Booster",
                at=time(13, 30)),
    DemoPatient("Taylor", "Kim", "DB-1105", "+16025550115", "taylor.kim@example.com", protocol="Booster",
                at=time(15)),
)  # fmt: skip


@dataclass(frozen=True)
class DemoSeed:
    clinic: Clinic
    username: str
    password: str
    token: str
    booked: list[str]
    refused: list[str]
    # Today's visits, booked as of before opening: notifications.demo settles their messages.
    today: list[Session] = field(default_factory=list)
    # The past four weeks' visits, written on the first run only: notifications.demo writes their messages.
    history: list[Session] = field(default_factory=list)


@transaction.atomic
def demo_seed(*, now: datetime | None = None) -> DemoSeed:
    now = now or timezone.now()
    clinic = _clinic()
    protocols = {name: _protocol(clinic, name, fields) for name, fields in _PROTOCOLS.items()}
    # A completed induction or booster recalls the patient for a booster four weeks later.
    Protocol.objects.filter(clinic=clinic, name__in=["Depression induction", "Booster"], booster_protocol=None).update(
        booster_protocol=protocols["Booster"], booster_interval_days=28
    )
    user, token = _staff_login()
    history = demo_history_seed(clinic=clinic, protocols=protocols, user=user, now=now)
    booked: list[str] = []
    refused: list[str] = []
    for spec in _PATIENTS:
        patient = _patient(clinic, spec, now)
        if spec.protocol is None or patient.series.exists():
            continue
        first_start = datetime.combine(_next_weekday(local_date(now, clinic.zone), spec.weekday), spec.at)
        try:
            series_book(
                patient=patient, protocol=protocols[spec.protocol], first_start=first_start, actor=user, now=now
            )
        except BookingConflict as conflict:
            # A demo database someone has been booking into may have taken the slot: keep going.
            refused.append(f"{patient}: {conflict.detail}")
            continue
        booked.append(f"{patient}: {spec.protocol} from {first_start:%a %d %b %H:%M}")
    _waitlist(clinic, protocols["Booster"], user, now)
    today = _today_visits(clinic, protocols["Booster"], user, now)
    booked += [f"{s.patient}: {s.series.protocol} today at {s.starts_at.astimezone(clinic.zone):%H:%M}" for s in today]
    return DemoSeed(clinic, user.get_username(), DEMO_PASSWORD, token.key, booked, refused, today, history)


def _waitlist(clinic: Clinic, booster: Protocol, user: AbstractBaseUser, now: datetime) -> None:
    """Casey waits for a booster in the next two weeks: cancel a visit on the board and "Fill from
    waitlist" offers her the time."""
    casey = clinic.patients.get(external_id="DB-1005")
    if casey.waitlist_entries.exists():
        return
    today = local_date(now, clinic.zone)
    waitlist_join(patient=casey, protocol=booster, earliest=today, latest=today + timedelta(days=14),
                  needed_by=today + timedelta(days=10), note="prefers mornings", actor=user, now=now)  # fmt: skip


def _today_visits(clinic: Clinic, booster: Protocol, user: AbstractBaseUser, now: datetime) -> list[Session]:
    """Today's visits, booked as the front desk would have before the clinic opened (the rules
    refuse a start in the past), then marked as a nurse would have by `now`: arrived, completed.
    Their messages are planned as of that booking: `notifications.demo` settles those that were
    due before `now` (this app never touches messages)."""
    today = local_date(now, clinic.zone)
    hours = clinic.opening_hours.filter(weekday=today.weekday()).first()
    if hours is None or clinic.closed_dates.filter(date=today).exists():
        return []
    booked_at = min(now, datetime.combine(today, hours.opens, tzinfo=clinic.zone) - timedelta(minutes=1))
    done = []
    for spec in _TODAY:
        patient = _patient(clinic, spec, booked_at)
        if patient.series.exists():
            continue
        series = series_book(
            patient=patient, protocol=booster, starts=[datetime.combine(today, spec.at)], actor=user, now=booked_at
        )
        session = series.sessions.get()
        if session.starts_at <= now:
            session = session_mark(
                session=session, status=Session.Status.ARRIVED, at=session.starts_at, actor=user, now=now
            )
        if session.ends_at <= now:
            session = session_mark(
                session=session, status=Session.Status.COMPLETED, at=session.ends_at, actor=user, now=now
            )
        done.append(session)
    return done


def _clinic() -> Clinic:
    clinic, _ = Clinic.objects.get_or_create(
        name=CLINIC_NAME,
        defaults=dict(
            time_zone="America/Phoenix",
            phone="+16025550100",
            address="100 Example Way, Suite 200, Phoenix, AZ 85004",
            sender_name="Desert Bloom",
            turnover_buffer_minutes=15,
            slot_minutes=15,
            max_starts_per_slot=2,
        ),
    )
    for weekday in _OPEN_DAYS:
        OpeningHours.objects.get_or_create(
            clinic=clinic, weekday=weekday, defaults=dict(opens=time(8), closes=time(18))
        )
        StaffingBlock.objects.get_or_create(
            clinic=clinic,
            weekday=weekday,
            starts=time(8),
            ends=time(18),
            defaults=dict(nurses=3, patients_per_nurse=2),
        )
    for number in range(1, 7):
        Chair.objects.get_or_create(clinic=clinic, name=f"Chair {number}")
    return clinic


def _protocol(clinic: Clinic, name: str, fields: dict) -> Protocol:
    protocol, _ = Protocol.objects.get_or_create(clinic=clinic, name=name, defaults=fields)
    return protocol


def _staff_login() -> tuple[AbstractBaseUser, Token]:
    user, created = get_user_model().objects.get_or_create(
        username=DEMO_USERNAME, defaults=dict(is_staff=True, email="demo@example.com")
    )
    if created:
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
        # Made by roles_sync after every migrate; a missing group means the database is not migrated.
        user.groups.add(Group.objects.get(name="Clinic admin"))
    token, _ = Token.objects.get_or_create(user=user)
    return user, token


def _patient(clinic: Clinic, spec: DemoPatient, now: datetime) -> Patient:
    patient, _ = Patient.objects.get_or_create(
        clinic=clinic,
        external_id=spec.mrn,
        defaults=dict(
            first_name=spec.first_name,
            last_name=spec.last_name,
            phone=spec.phone,
            email=spec.email,
            language=spec.language,
            sms_consent_at=now,
            sms_consent_source="Intake form (demo)",
        ),
    )
    return patient


def _next_weekday(today: date, weekday: int) -> date:
    """The first `weekday` at least two days ahead, so every demo series starts in the future."""
    ahead = (weekday - today.weekday()) % 7
    return today + timedelta(days=ahead if ahead >= 2 else ahead + 7)
