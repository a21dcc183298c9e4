from datetime import datetime

import pytest
from django.contrib.auth.models import User

from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db

PAGES = ["clinic", "protocol", "patient", "series", "session"]


@pytest.fixture
def booked_series(now):
    clinic = clinic_make()
    return series_book(
        patient=patient_make(clinic), protocol=protocol_make(clinic), first_start=datetime(2026, 1, 6, 10), now=now
    )


@pytest.mark.parametrize("model", PAGES)
def test_admin_lists_and_shows_each_model(client, booked_series, model):
    client.force_login(User.objects.create_superuser("root", "root@example.com", None))
    instance = {"clinic": booked_series.clinic, "protocol": booked_series.protocol, "patient": booked_series.patient,
                "series": booked_series, "session": booked_series.sessions.first()}[model]  # fmt: skip

    assert client.get(f"/admin/booking/{model}/").status_code == 200
    assert client.get(f"/admin/booking/{model}/{instance.pk}/change/").status_code == 200


def test_sessions_cannot_be_edited_in_the_admin(client, booked_series):
    client.force_login(User.objects.create_superuser("root", "root@example.com", None))
    session = booked_series.sessions.first()

    answer = client.post(f"/admin/booking/session/{session.pk}/change/", {"status": "cancelled"})

    assert answer.status_code == 403
    session.refresh_from_db()
    assert session.status == "booked"
