"""Booking a series from the page: find or register the patient, preview, book."""

from datetime import datetime, time, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from sessions.clock import local_date
from sessions.models import AuditEvent, Patient, Series
from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make

pytestmark = pytest.mark.django_db


def wall(day, hour: int, minute: int = 0) -> str:
    """A datetime-local value, as the browser sends it."""
    return datetime.combine(day, time(hour, minute)).isoformat(timespec="minutes")


def test_search_finds_a_patient_by_name_mrn_or_phone_as_typed(scheduler, patient):
    patient_make(patient.clinic, first_name="Jordan", last_name="Reyes")

    for query in ("avery", "Lane Avery", "db-1001", "(602) 555-0101", "0101"):
        response = scheduler.get(reverse("staff:book"), {"q": query})
        assert response.context["found"] == [patient], query


def test_search_ignores_accents_either_way(scheduler, clinic):
    lucia = patient_make(clinic, first_name="Lucía", last_name="Peña")
    lucia_plain = patient_make(clinic, first_name="Lucia", last_name="Gomez")

    for query, expected in (("lucia", {lucia, lucia_plain}), ("Lucía", {lucia, lucia_plain}), ("pena", {lucia}),
                            ("LUCÍA PEÑA", {lucia})):  # fmt: skip
        response = scheduler.get(reverse("staff:patients"), {"q": query})
        assert set(response.context["found"]) == expected, query


def test_before_a_search_the_patient_list_shows_the_latest_booked_first(scheduler, clinic, induction, later):
    quiet, busy = patient_make(clinic, first_name="Quinn"), patient_make(clinic, first_name="Blake")
    series_book(patient=busy, protocol=induction, first_start=datetime.combine(later, time(9)))

    page = scheduler.get(reverse("staff:patients"))

    assert page.context["found"][:2] == [busy, quiet]
    assert "Recent patients" in page.content.decode()


def test_a_new_patient_with_a_bad_phone_is_refused_by_the_models_validator(scheduler, clinic):
    fields = {"clinic": clinic.pk, "first_name": "Casey", "last_name": "Brooks", "external_id": "DB-1005",
              "phone": "+1555", "email": "", "language": "en"}  # fmt: skip

    refused = scheduler.post(reverse("staff:book"), fields)
    created = scheduler.post(reverse("staff:book"), {**fields, "phone": "+16025550105", "sms_consent": "on",
                                                      "sms_consent_source": "intake form"})  # fmt: skip

    assert refused.status_code == 200
    assert refused.context["new_patient"].errors["phone"] == ["+1555 is not a valid phone number."]
    patient = Patient.objects.get(external_id="DB-1005")
    assert created["Location"] == reverse("staff:book-series", args=[patient.pk])
    assert patient.sms_consent_at is not None and patient.sms_consent_source == "intake form"


def test_a_phone_typed_the_local_way_is_stored_in_international_form(scheduler, clinic):
    fields = {"clinic": clinic.pk, "first_name": "Casey", "last_name": "Brooks", "external_id": "DB-2001",
              "phone": "(602) 555-0107", "email": "", "language": "en"}  # fmt: skip

    created = scheduler.post(reverse("staff:book"), fields)
    refused = scheduler.post(reverse("staff:book"), {**fields, "external_id": "DB-2002", "phone": "555-0107"})

    assert created.status_code == 302
    assert Patient.objects.get(external_id="DB-2001").phone == "+16025550107"
    assert refused.status_code == 200 and "e.g. (520) 555-0123" in refused.context["new_patient"].errors["phone"][0]


def test_a_duplicate_mrn_links_to_the_patient_it_belongs_to(scheduler, clinic, patient):
    fields = {"clinic": clinic.pk, "first_name": "Casey", "last_name": "Brooks", "external_id": patient.external_id,
              "phone": "", "email": "", "language": "en", "sms_consent": "on"}  # fmt: skip

    refused = scheduler.post(reverse("staff:book"), fields)

    form = refused.context["new_patient"]
    assert form.errors["external_id"] == [f"MRN {patient.external_id} is already {patient}'s at {clinic.name}."]
    assert "Say how the patient agreed" in form.errors["sms_consent_source"][0]
    html = refused.content.decode()
    assert reverse("staff:book-series", args=[patient.pk]) in html
    assert "Needed when the patient agreed to reminders by text." in html
    assert Patient.objects.filter(external_id=patient.external_id).count() == 1


def test_a_patient_registered_on_the_page_is_in_the_audit_trail_with_the_user(scheduler, clinic):
    fields = {"clinic": clinic.pk, "first_name": "Casey", "last_name": "Brooks", "external_id": "DB-1006",
              "phone": "+16025550106", "email": "", "language": "en"}  # fmt: skip

    scheduler.post(reverse("staff:book"), fields)

    patient = Patient.objects.get(external_id="DB-1006")
    event = AuditEvent.objects.get(patient=patient)
    assert (event.action, event.via, event.actor.username, event.clinic) == ("created", "staff", "scheduler", clinic)
    page = scheduler.get(reverse("staff:patient", args=[patient.pk])).content.decode()
    assert "Created" in page and "scheduler" in page


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_a_name_with_a_line_break_is_refused(scheduler, clinic, field):
    fields = {"clinic": clinic.pk, "first_name": "Casey", "last_name": "Brooks", "external_id": "DB-1007",
              "phone": "+16025550107", "email": "", "language": "en"}  # fmt: skip

    refused = scheduler.post(reverse("staff:book"), {**fields, field: "Casey\r\nBcc: x@example.com"})

    assert refused.status_code == 200
    assert list(refused.context["new_patient"].errors) == [field]
    assert not Patient.objects.filter(external_id="DB-1007").exists()


def test_preview_shows_every_session_and_books_nothing_then_book_saves_the_series(
    scheduler, clinic, induction, patient, later
):
    url = reverse("staff:book-series", args=[patient.pk])
    form = {"protocol": induction.pk, "first_start": wall(later, 9), "chair": ""}

    preview = scheduler.post(url, {**form, "action": "preview"})

    plan = preview.context["plan"]
    assert plan["bookable"] and len(plan["rows"]) == 6
    assert [row["starts"].date() for row in plan["rows"]] == [later + timedelta(days=n) for n in range(6)]
    assert all(row["starts"].time() == time(9) and row["conflict"] is None for row in plan["rows"])
    assert not Series.objects.exists()

    booked = scheduler.post(url, {**form, "plan": plan["signature"], "action": "book"}, follow=True)

    series = Series.objects.get()
    assert booked.redirect_chain[-1][0] == reverse("staff:patient", args=[patient.pk])
    assert series.sessions.count() == 6 and series.created_by.username == "scheduler"
    event = AuditEvent.objects.get(series=series)
    assert (event.action, event.via, event.actor.username) == ("booked", "staff", "scheduler")
    assert f"Booked Depression induction for {patient}" in [str(m) for m in booked.context["messages"]][0]


def test_a_broken_rule_shows_next_to_the_session_and_as_a_message_on_book(scheduler, clinic, induction, patient, later):
    url = reverse("staff:book-series", args=[patient.pk])
    fits = scheduler.post(url, {"protocol": induction.pk, "first_start": wall(later, 9), "action": "preview"})
    # Two hours from 17:00 run past closing time (18:00).
    form = {"protocol": induction.pk, "first_start": wall(later, 17), "chair": ""}

    preview = scheduler.post(url, {**form, "action": "preview"})
    refused = scheduler.post(url, {**form, "plan": fits.context["plan"]["signature"], "action": "book"})

    [row] = preview.context["plan"]["rows"]
    assert (row["conflict"].code, row["conflict"].rule) == ("outside_opening_hours", 1)
    assert preview.context["plan"]["unplaced"] == [2, 3, 4, 5, 6]
    html = preview.content.decode()
    assert "Rule 1" in html and 'value="book"' not in html
    [message] = [str(m) for m in refused.context["messages"]]
    assert message.startswith("Not booked: Session 1: ") and "(rule 1:" in message
    assert refused.context["plan"] is not None
    assert not Series.objects.filter(patient=patient).exists()


def test_a_refused_preview_offers_the_nearest_first_sessions_from_which_the_series_fits(
    scheduler, clinic, induction, patient, later
):
    url = reverse("staff:book-series", args=[patient.pk])
    # Two hours from 17:00 run past closing time (18:00).
    preview = scheduler.post(url, {"protocol": induction.pk, "first_start": wall(later, 17), "action": "preview"})

    offered = preview.context["plan"]["alternatives"]
    assert 1 <= len(offered) <= 3 and offered == sorted(offered)
    html = preview.content.decode()
    assert "The whole series fits from:" in html and html.count("not planned: the series stops") == 1
    assert '<td class="num">2–6</td>' in html
    for start in offered:
        again = scheduler.post(
            url, {"protocol": induction.pk, "first_start": f"{start:%Y-%m-%dT%H:%M}", "action": "preview"}
        )
        assert again.context["plan"]["bookable"], start
        assert f'value="{start:%Y-%m-%dT%H:%M}"' in html


def test_a_taken_chair_says_whose_session_holds_it_and_until_when(
    scheduler, clinic, induction, booster, patient, later
):
    chair = clinic.chairs.order_by("name").first()
    holder = patient_make(clinic, first_name="Jordan", last_name="Reyes")
    series_book(patient=holder, protocol=booster, first_start=datetime.combine(later, time(9)), chair=chair)
    url = reverse("staff:book-series", args=[patient.pk])

    preview = scheduler.post(
        url, {"protocol": induction.pk, "first_start": wall(later, 10), "chair": chair.pk, "action": "preview"}
    )

    [row] = preview.context["plan"]["rows"]
    assert row["conflict"].code == "chair_overlap"
    # The booster runs 09:00–11:00; the clinic's turnover (15 minutes) frees the chair at 11:15.
    assert "a session there holds it until 11:15, 15-minute turnover included" in row["why"]
    assert row["why"].endswith("Held by Jordan Reyes's Booster (1 of 1), 09:00–11:00.")
    assert "Held by Jordan Reyes&#x27;s Booster" in preview.content.decode()


def test_book_without_a_preview_books_nothing_and_shows_the_plan(scheduler, induction, patient, later):
    url = reverse("staff:book-series", args=[patient.pk])

    response = scheduler.post(url, {"protocol": induction.pk, "first_start": wall(later, 9), "action": "book"})

    assert [str(m) for m in response.context["messages"]] == [
        "Not booked: preview the series first, then book what the preview shows."
    ]
    assert response.context["plan"]["bookable"] and 'value="book"' in response.content.decode()
    assert not Series.objects.exists()


def test_book_after_a_field_changed_books_nothing_and_shows_the_new_plan(scheduler, induction, patient, later):
    url = reverse("staff:book-series", args=[patient.pk])
    preview = scheduler.post(url, {"protocol": induction.pk, "first_start": wall(later, 9), "action": "preview"})

    changed = scheduler.post(
        url,
        {"protocol": induction.pk, "first_start": wall(later, 10), "plan": preview.context["plan"]["signature"],
         "action": "book"},
    )  # fmt: skip

    assert not Series.objects.exists()
    [message] = [str(m) for m in changed.context["messages"]]
    assert message == "Not booked: the sessions changed since the preview. Check this preview and book."
    plan = changed.context["plan"]
    assert [row["starts"].time() for row in plan["rows"]] == [time(10)] * 6
    assert plan["signature"] != preview.context["plan"]["signature"]


def test_book_after_the_calendar_changed_books_nothing(scheduler, clinic, induction, patient, later):
    url = reverse("staff:book-series", args=[patient.pk])
    form = {"protocol": induction.pk, "first_start": wall(later, 9), "chair": ""}
    preview = scheduler.post(url, {**form, "action": "preview"})
    first_chair = preview.context["plan"]["rows"][0]["chair"]
    # Meanwhile a colleague books the chair the preview chose, at the same time.
    other = patient_make(clinic, first_name="Noa")
    series_book(patient=other, protocol=induction, first_start=datetime.combine(later, time(9)),
                chair=clinic.chairs.get(name=first_chair))  # fmt: skip

    response = scheduler.post(url, {**form, "plan": preview.context["plan"]["signature"], "action": "book"})

    assert not Series.objects.filter(patient=patient).exists()
    assert "changed since the preview" in str(list(response.context["messages"])[0])
    assert response.context["plan"]["rows"][0]["chair"] != first_chair


def test_a_time_the_clocks_skip_is_a_form_error(scheduler):
    clinic = clinic_make(time_zone="America/New_York")
    protocol = protocol_make(clinic, kind="booster")
    patient = patient_make(clinic)
    spring_forward = next(
        d
        for d in (local_date(timezone.now(), clinic.zone) + timedelta(days=n) for n in range(1, 400))
        if d.month == 3 and d.weekday() == 6 and 8 <= d.day <= 14
    )

    response = scheduler.post(
        reverse("staff:book-series", args=[patient.pk]),
        {"protocol": protocol.pk, "first_start": wall(spring_forward, 2, 30), "action": "preview"},
    )

    [error] = response.context["form"].errors["first_start"]
    assert error == f"{spring_forward} 02:30 in America/New_York does not exist (clocks go forward): pick another time."
    assert response.context["plan"] is None


def test_a_time_the_clocks_repeat_is_a_form_error(scheduler):
    clinic = clinic_make(time_zone="America/New_York")
    protocol = protocol_make(clinic, kind="booster")
    fall_back = next(
        d
        for d in (local_date(timezone.now(), clinic.zone) + timedelta(days=n) for n in range(1, 400))
        if d.month == 11 and d.weekday() == 6 and d.day <= 7
    )

    response = scheduler.post(
        reverse("staff:book-series", args=[patient_make(clinic).pk]),
        {"protocol": protocol.pk, "first_start": wall(fall_back, 1, 30), "action": "preview"},
    )

    [error] = response.context["form"].errors["first_start"]
    assert "happens twice in America/New_York" in error
