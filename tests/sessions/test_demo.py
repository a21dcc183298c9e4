from datetime import datetime
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from sessions.demo import DEMO_PASSWORD, DEMO_USERNAME, demo_seed
from sessions.models import Chair, Clinic, Patient, Protocol, Series, Session, StaffingBlock

pytestmark = pytest.mark.django_db

_MODELS = (Clinic, Chair, StaffingBlock, Protocol, Patient, Series, Session)


def _counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in _MODELS}


def test_it_books_every_demo_series_through_the_rules(now):
    seed = demo_seed(now=now)

    assert seed.refused == []
    booked = Session.objects.exclude(pk__in=[s.pk for s in seed.history])
    # Two inductions of 6, a pain course of 5 and two boosters ahead; five boosters today.
    assert Series.objects.filter(sessions__in=booked).distinct().count() == 5 + 5
    assert booked.count() == 6 + 6 + 5 + 1 + 1 + 5
    # At 05:00 in Phoenix, before opening: today's visits are all still to come.
    assert not booked.filter(starts_at__lte=now).exists()
    assert Patient.objects.filter(series__isnull=True).exists()


def test_today_s_board_is_busy_at_any_hour_with_the_marks_a_nurse_would_have_made(db):
    afternoon = datetime(2026, 1, 5, 14, 0, tzinfo=ZoneInfo("America/Phoenix"))  # a Monday

    seed = demo_seed(now=afternoon)

    today = {s.starts_at.astimezone(afternoon.tzinfo).strftime("%H:%M"): s.status for s in seed.today}
    assert today == {"08:30": "completed", "10:00": "completed", "11:30": "completed", "13:30": "arrived",
                     "15:00": "booked"}  # fmt: skip
    assert seed.refused == []


def test_it_changes_nothing_when_run_again(now):
    demo_seed(now=now)
    before = _counts()

    again = demo_seed(now=now)

    assert _counts() == before
    assert again.booked == [] and again.refused == [] and again.history == []


def test_its_staff_login_is_a_clinic_admin_but_not_a_superuser(now, rf):
    seed = demo_seed(now=now)

    # django-axes counts sign-ins per address, so it needs the request they come in.
    user = authenticate(rf.post("/staff/login/"), username=DEMO_USERNAME, password=DEMO_PASSWORD)
    assert user is not None
    assert user.is_staff and not user.is_superuser
    assert list(user.groups.values_list("name", flat=True)) == ["Clinic admin"]
    assert user.auth_token.key == seed.token


def test_the_command_prints_the_login(settings):
    settings.DEBUG = True
    out = StringIO()

    call_command("seed_demo", stdout=out)

    assert f"Staff login: {DEMO_USERNAME} / {DEMO_PASSWORD}" in out.getvalue()


def test_the_command_refuses_without_debug_since_its_password_is_public(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError):
        call_command("seed_demo")

    assert not Clinic.objects.exists()
