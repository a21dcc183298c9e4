"""The demo's past four weeks as a scheduler walking `make run` meets them: the Reports page's
default four weeks have figures, and the month beside the board shades the days behind."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from notifications.demo import demo_history_messages
from sessions.clock import local_date
from sessions.demo import DEMO_USERNAME, demo_seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo() -> tuple:
    seed = demo_seed()
    demo_history_messages(sessions=seed.history)
    client = Client()
    client.force_login(get_user_model().objects.get(username=DEMO_USERNAME))
    return seed, client


def test_the_reports_page_opens_on_the_demo_s_four_weeks_with_every_figure(demo):
    seed, client = demo

    page = client.get("/staff/reports/")

    assert page.status_code == 200
    shown = {tile.label: tile.text for tile in page.context["tiles"]}
    assert "–" not in shown.values(), shown
    assert len(page.context["report"].series) > 4


def test_the_month_beside_the_board_shades_the_past_days(demo):
    seed, client = demo
    clinic = seed.clinic
    last_week = [s for s in seed.history if s.starts_at > timezone.now() - timedelta(days=7)]
    day = local_date(last_week[0].starts_at, clinic.zone)

    page = client.get(f"/staff/board/{clinic.pk}/", {"date": day.isoformat()})

    cells = [cell for week in page.context["month"].weeks for cell in week]
    past = [cell for cell in cells if cell.day in {local_date(s.starts_at, clinic.zone) for s in seed.history}]
    assert past and all(cell.load == "some" for cell in past)
    assert f'href="?date={day.isoformat()}" class="load-some' in page.content.decode()
