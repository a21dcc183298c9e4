from datetime import date, time, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from sessions.clock import local_date
from sessions.models import Clinic, Patient, Protocol
from tests.factories import clinic_make, patient_make, protocol_make, staffing_make

from .builders import client_as, staff_user


@pytest.fixture(autouse=True)
def _no_broker_kick(settings) -> None:
    # A booking would wake the reminder tick through the broker; these tests send nothing.
    settings.REMINDER_KICK_ON_BOOKING = False


@pytest.fixture
def quiet_browser_run(settings, monkeypatch) -> None:
    """For the browser tests: nothing leaves the test, and the test may read the database
    between page steps."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    # Playwright's sync API keeps an event loop in this thread, so Django takes the test's own
    # (synchronous) database reads between page steps for calls from async code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def clinic(db) -> Clinic:
    clinic = clinic_make(chairs=3, opens=time(8), closes=time(18), buffer_minutes=15)
    staffing_make(clinic, nurses=2, per_nurse=3, starts=time(8), ends=time(18))
    return clinic


@pytest.fixture
def induction(clinic) -> Protocol:
    return protocol_make(clinic, kind="induction")


@pytest.fixture
def booster(clinic) -> Protocol:
    return protocol_make(clinic, kind="booster")


@pytest.fixture
def patient(clinic) -> Patient:
    return patient_make(clinic, first_name="Avery", last_name="Lane", external_id="DB-1001", phone="+16025550101")


@pytest.fixture
def later(clinic) -> date:
    """A day far enough ahead that nothing on it has started, in the clinic's calendar."""
    return local_date(timezone.now(), clinic.zone) + timedelta(days=3)


@pytest.fixture
def scheduler(db) -> Client:
    return client_as(staff_user("Scheduler"))


@pytest.fixture
def nurse(db) -> Client:
    return client_as(staff_user("Nurse"))


@pytest.fixture
def clinic_admin(db) -> Client:
    return client_as(staff_user("Clinic admin"))
