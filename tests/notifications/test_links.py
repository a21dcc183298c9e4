"""Patient link tokens: the one-statement lookup behind /r/<token> loads the same rows the ORM
would, on PostgreSQL here and on SQLite (what `make run` uses) in a child process, where the
page's fixed-text list of the series' other visits is checked too."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications.links import link_create, link_session
from sessions.models import Session
from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def booked(clinic, patient) -> Session:
    start = (timezone.now() + timedelta(days=5)).astimezone(clinic.zone).replace(hour=9, minute=0, tzinfo=None)
    series = series_book(patient=patient, protocol=protocol_make(clinic), first_start=start)
    return series.sessions.get(number=2)


def test_a_token_opens_its_session_with_what_the_page_shows_in_one_query():
    clinic = clinic_make(address="12 Saguaro Way")
    session = booked(clinic, patient_make(clinic, language="es"))
    token = link_create(session=session)
    expected = Session.objects.select_related("clinic", "patient", "series__protocol").get(pk=session.pk)

    with CaptureQueriesContext(connection) as queries:
        found = link_session(token=token)
        shown = [found.clinic, found.patient, found.patient.clinic, found.series, found.series.protocol]

    assert len(queries) == 1
    assert fields(found) == fields(expected)
    assert [fields(row) for row in shown] == [
        fields(row)
        for row in (expected.clinic, expected.patient, expected.clinic, expected.series, expected.series.protocol)
    ]


def test_a_patient_of_another_clinic_keeps_their_own_clinic():
    home, visited = clinic_make(), clinic_make(time_zone="America/New_York")
    session = booked(visited, patient_make(home))

    found = link_session(token=link_create(session=session))

    assert found.clinic == visited
    assert found.patient.clinic == home


@pytest.mark.parametrize("token", ["", "short", "x" * 65, "unknown-token-123"])
def test_tokens_that_open_nothing(token):
    assert link_session(token=token) is None


SQLITE_CHECK = """
from datetime import datetime, timedelta, timezone as tz
from django.core.management import call_command
call_command("migrate", verbosity=0)
from notifications.links import link_create, link_session
from sessions.models import Session
from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make
clinic = clinic_make()
start = (datetime.now(tz.utc) + timedelta(days=5)).astimezone(clinic.zone).replace(hour=9, minute=0, tzinfo=None)
series = series_book(patient=patient_make(clinic), protocol=protocol_make(clinic), first_start=start)
session = series.sessions.get(number=1)
found = link_session(token=link_create(session=session))
assert found.starts_at == session.starts_at and found.starts_at.tzinfo is not None, found.starts_at
assert found.series.protocol.name == "Depression induction" and found.clinic.zone == clinic.zone
from notifications.patient_actions import link_series_visits
visits = link_series_visits(session=found, now=datetime.now(tz.utc))
assert visits == [(s.number, s.starts_at) for s in series.sessions.exclude(pk=session.pk).order_by("starts_at")], visits
print("sqlite ok")
"""


def test_the_lookup_also_works_on_sqlite(tmp_path):
    environment = {
        **{name: value for name, value in os.environ.items() if name not in {"DATABASE_URL", "REDIS_URL"}},
        "DJANGO_SETTINGS_MODULE": "scheduler.settings.dev",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CELERY_FILESYSTEM_BROKER_DIR": str(tmp_path / "broker"),
    }
    script = "import django; django.setup()\n" + SQLITE_CHECK
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert "sqlite ok" in done.stdout
