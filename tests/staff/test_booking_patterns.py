"""A series on chosen weekdays (Mon/Wed/Fri), and a preview whose single days and times the
scheduler edits before booking: from the staff page and the API alike."""

from datetime import date, datetime, time, timedelta

import pytest
from django.urls import reverse

from sessions.models import Series
from tests.api.conftest import client_for
from tests.staff.test_booking import wall

pytestmark = pytest.mark.django_db

MON_WED_FRI = [0, 2, 4]


def next_monday(day: date) -> date:
    return day + timedelta(days=(7 - day.weekday()) % 7 or 7)


def test_a_series_on_mon_wed_fri_keeps_to_those_days_and_books_them(scheduler, induction, patient, later):
    monday = next_monday(later)
    url = reverse("staff:book-series", args=[patient.pk])
    form = {"protocol": induction.pk, "first_start": wall(monday, 9), "weekdays": MON_WED_FRI}

    preview = scheduler.post(url, {**form, "action": "preview"})

    plan = preview.context["plan"]
    days = [row["starts"].date() for row in plan["rows"]]
    assert plan["bookable"] and [d.strftime("%a") for d in days] == ["Mon", "Wed", "Fri", "Mon", "Wed", "Fri"]
    assert days == [monday + timedelta(days=n) for n in (0, 2, 4, 7, 9, 11)]
    scheduler.post(url, {**form, "plan": plan["signature"], "action": "book"})
    booked = Series.objects.get(patient=patient).sessions.order_by("number")
    assert [induction.clinic.local(s.starts_at).date() for s in booked] == days


def test_a_first_session_off_the_chosen_weekdays_is_refused_at_the_weekdays(scheduler, induction, patient, later):
    tuesday = next_monday(later) + timedelta(days=1)
    url = reverse("staff:book-series", args=[patient.pk])

    preview = scheduler.post(
        url, {"protocol": induction.pk, "first_start": wall(tuesday, 9), "weekdays": MON_WED_FRI, "action": "preview"}
    )

    assert preview.context["plan"] is None
    [error] = preview.context["form"].errors["weekdays"]
    assert error == "The first session is on a Tuesday: start on Mon/Wed/Fri, or add Tue."


def test_weekdays_the_gaps_cannot_reach_name_the_session_and_the_days(scheduler, clinic, patient, later):
    from tests.factories import protocol_make

    daily = protocol_make(clinic, kind="pain")  # 1 day apart, no more
    monday = next_monday(later)
    url = reverse("staff:book-series", args=[patient.pk])

    preview = scheduler.post(
        url, {"protocol": daily.pk, "first_start": wall(monday, 8), "weekdays": MON_WED_FRI, "action": "preview"}
    )

    rows = preview.context["plan"]["rows"]
    assert [row["conflict"] is None for row in rows] == [True, False]
    assert rows[1]["conflict"].detail.startswith("Session 2 cannot be placed: no Mon/Wed/Fri falls between Tue")


def edited(plan: dict, changes: dict[int, str]) -> list[str]:
    """The preview's inputs as the scheduler leaves them: each row's time, some changed."""
    return [changes.get(row["number"], f"{row['starts']:%Y-%m-%dT%H:%M}") for row in plan["rows"]]


def test_a_single_day_edited_in_the_preview_is_checked_and_booked_as_edited(scheduler, induction, patient, later):
    url = reverse("staff:book-series", args=[patient.pk])
    form = {"protocol": induction.pk, "first_start": wall(later, 9)}
    first = scheduler.post(url, {**form, "action": "preview"}).context["plan"]
    # Session 3 later that day, session 6 a day later than placed.
    third, sixth = later + timedelta(days=2), later + timedelta(days=6)
    starts = edited(first, {3: wall(third, 11), 6: wall(sixth, 14)})

    retimed = scheduler.post(url, {**form, "start": starts, "action": "retime"})

    plan = retimed.context["plan"]
    assert plan["bookable"] and plan["mode"] == "times"
    when = [(row["starts"].date(), row["starts"].time()) for row in plan["rows"]]
    assert when[2] == (third, time(11)) and when[5] == (sixth, time(14))
    html = retimed.content.decode()
    assert f'value="{third:%Y-%m-%d}T11:00"' in html and 'name="mode" value="times"' in html

    booked = scheduler.post(
        url, {**form, "start": starts, "mode": "times", "plan": plan["signature"], "action": "book"}
    )

    assert booked.status_code == 302
    sessions = Series.objects.get(patient=patient).sessions.order_by("number")
    assert [
        (induction.clinic.local(s.starts_at).date(), induction.clinic.local(s.starts_at).time()) for s in sessions
    ] == when


def test_an_edited_day_that_breaks_the_gap_is_refused_on_its_row_and_books_nothing(
    scheduler, induction, patient, later
):
    url = reverse("staff:book-series", args=[patient.pk])
    form = {"protocol": induction.pk, "first_start": wall(later, 9)}
    first = scheduler.post(url, {**form, "action": "preview"}).context["plan"]
    # Session 2 five days after session 1: the induction allows 1–4.
    starts = edited(first, {2: wall(later + timedelta(days=5), 9)})

    retimed = scheduler.post(url, {**form, "start": starts, "action": "retime"})

    plan = retimed.context["plan"]
    assert not plan["bookable"] and 'value="book"' not in retimed.content.decode()
    assert [row["number"] for row in plan["rows"] if row["conflict"] is not None][:1] == [2]
    assert not Series.objects.exists()


def test_an_edited_time_left_empty_or_past_is_named_by_session(scheduler, induction, patient, later):
    url = reverse("staff:book-series", args=[patient.pk])
    form = {"protocol": induction.pk, "first_start": wall(later, 9)}
    first = scheduler.post(url, {**form, "action": "preview"}).context["plan"]
    starts = edited(first, {2: "", 5: "2001-01-01T10:00"})

    retimed = scheduler.post(url, {**form, "start": starts, "action": "retime"})

    assert retimed.context["plan"] is None
    assert retimed.context["form"].non_field_errors() == [
        "Session 2: give a day and time, or press Preview to place it for you.",
        "Session 5: This time has already passed.",
    ]


def test_the_api_places_a_series_on_the_weekdays_asked_for(clinic, induction, patient):
    api = client_for("Scheduler")
    protocol = induction
    monday = next_monday(datetime.now().date() + timedelta(days=3))
    body = {"patient": patient.pk, "protocol": protocol.pk, "first_start": wall(monday, 10),
            "weekdays": ["fri", "mon", "wed"]}  # fmt: skip

    preview = api.post("/api/series/?preview=1", body, format="json")
    booked = api.post("/api/series/", body, format="json")
    refused = api.post("/api/series/", {**body, "first_start": wall(monday + timedelta(days=1), 10)}, format="json")

    assert preview.status_code == 200 and preview.json()["bookable"]
    assert booked.status_code == 201, booked.content
    starts = [datetime.fromisoformat(s["starts_at"]).astimezone(clinic.zone) for s in booked.json()["sessions"]]
    assert [s.strftime("%a") for s in starts] == ["Mon", "Wed", "Fri", "Mon", "Wed", "Fri"]
    assert refused.status_code == 400 and "Mon/Wed/Fri" in refused.json()["weekdays"][0]


def test_a_time_typed_but_not_previewed_is_not_booked_silently(scheduler, induction, patient, later):
    url = reverse("staff:book-series", args=[patient.pk])
    form = {"protocol": induction.pk, "first_start": wall(later, 9)}
    plan = scheduler.post(url, {**form, "action": "preview"}).context["plan"]
    starts = edited(plan, {2: wall(later + timedelta(days=1), 15)})

    typed = scheduler.post(url, {**form, "start": starts, "plan": plan["signature"], "action": "book"})
    untouched = scheduler.post(url, {**form, "start": edited(plan, {}), "plan": plan["signature"], "action": "book"})

    [message] = [str(m) for m in typed.context["messages"]]
    assert message.startswith("Not booked: a day or time was changed under 'Change a day or time'.")
    assert untouched.status_code == 302
    assert Series.objects.get(patient=patient).sessions.count() == 6


def test_the_alternatives_to_a_refused_pattern_keep_to_its_weekdays(scheduler, induction, patient, later):
    monday = next_monday(later)
    url = reverse("staff:book-series", args=[patient.pk])
    # Two hours from 17:00 run past closing time (18:00).
    preview = scheduler.post(
        url, {"protocol": induction.pk, "first_start": wall(monday, 17), "weekdays": MON_WED_FRI, "action": "preview"}
    )

    offered = preview.context["plan"]["alternatives"]
    assert offered and all(start.weekday() in MON_WED_FRI for start in offered)
    html = preview.content.decode()
    assert html.count('<input type="hidden" name="weekdays" value="2">') == len(offered)


def test_a_series_keeps_its_weekdays_for_life_a_reflow_re_spaces_it_on_them(scheduler, clinic, patient, later):
    from sessions.services import series_book, series_reflow
    from tests.factories import protocol_make

    course = protocol_make(clinic, kind="induction", name="Course", session_count=4, min_gap_days=2, max_gap_days=4)
    monday = next_monday(later)
    series = series_book(
        patient=patient, protocol=course, first_start=datetime.combine(monday, time(10)), weekdays=MON_WED_FRI
    )
    assert [clinic.local(s.starts_at).strftime("%a") for s in series.sessions.order_by("number")] == [
        "Mon", "Wed", "Fri", "Mon",
    ]  # fmt: skip

    # Session 2 moves from Wednesday to Thursday: Friday is then too close (2 days at least), and
    # the next day that keeps the gap on Mon/Wed/Fri is Monday (not Saturday), then Wednesday.
    series_reflow(
        session=series.sessions.get(number=2), starts_at=datetime.combine(monday + timedelta(days=3), time(10))
    )

    days = [clinic.local(s.starts_at).date() for s in series.sessions.order_by("number")]
    assert days == [monday + timedelta(days=n) for n in (0, 3, 7, 9)]
    page = scheduler.get(reverse("staff:patient", args=[patient.pk])).content.decode()
    assert "on Mon/Wed/Fri" in page
    answer = scheduler.get(f"/api/series/{series.pk}/").json()
    assert answer["weekdays"] == ["mon", "wed", "fri"]
