from datetime import datetime, time, timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from rest_framework.test import APIClient

from sessions.services import series_book, session_cancel
from tests.factories import clinic_make, patient_make, protocol_make


def client_for(role: str) -> APIClient:
    user = User.objects.create_user(username=role.lower().replace(" ", "_"))
    user.groups.add(Group.objects.get(name=role))
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def admin_api(db) -> APIClient:
    return client_for("Clinic admin")


@pytest.fixture
def scheduler_api(db) -> APIClient:
    return client_for("Scheduler")


@pytest.fixture
def nurse_api(db) -> APIClient:
    return client_for("Nurse")


@pytest.fixture
def clinic(db):
    clinic = clinic_make(chairs=3)
    protocol_make(clinic, kind="induction")
    protocol_make(clinic, kind="booster")
    return clinic


@pytest.fixture
def patient(clinic):
    return patient_make(clinic)


def day_ahead(clinic, days: int = 5):
    return (timezone.now().astimezone(clinic.zone) + timedelta(days=days)).date()


@pytest.fixture
def booster(clinic):
    return clinic.protocols.get(name="Booster")


@pytest.fixture
def freed(clinic, booster):
    """A booster five days ahead, cancelled: its chair time is free for the waitlist."""
    start = datetime.combine(day_ahead(clinic), time(10))
    session = series_book(patient=patient_make(clinic), protocol=booster, starts=[start]).sessions.get()
    return session_cancel(session=session, reason="patient asked")
