"""Book-a-series across a patient's series (rule 10): the preview names the session and the rule
for every conflict, and a second active series of a protocol is booked only with a reason."""

from datetime import datetime, time, timedelta

import pytest
from django.urls import reverse

from sessions.models import AuditEvent, Series
from sessions.services import series_book

from .builders import wall

pytestmark = pytest.mark.django_db


@pytest.fixture
def active(patient, induction, later) -> Series:
    return series_book(patient=patient, protocol=induction, first_start=datetime.combine(later, time(9)))


def test_a_second_active_series_is_named_in_the_preview_and_booked_only_with_a_reason(
    scheduler, patient, induction, active, later
):
    url = reverse("staff:book-series", args=[patient.pk])
    form = {"protocol": induction.pk, "first_start": wall(later + timedelta(weeks=2), 9), "chair": ""}

    preview = scheduler.post(url, {**form, "action": "preview"})
    with_reason = {**form, "override_reason": "  second course,\n ordered by Dr Ruiz "}
    reasoned = scheduler.post(url, {**with_reason, "action": "preview"})
    # A crafted "book" with the reason's plan but no reason still meets rule 10.
    refused = scheduler.post(url, {**form, "plan": reasoned.context["plan"]["signature"], "action": "book"})
    booked = scheduler.post(
        url, {**with_reason, "plan": reasoned.context["plan"]["signature"], "action": "book"}, follow=True
    )

    plan = preview.context["plan"]
    assert plan["duplicate"] and not plan["bookable"]
    first = plan["rows"][0]
    assert (first["number"], first["conflict"].code, first["conflict"].rule) == (1, "series_duplicate", 10)
    html = preview.content.decode()
    assert "<strong>Session 1</strong>: The patient already has an active Depression induction series" in html
    assert "Rule 10" in html and "one active series per protocol per patient" in html
    assert 'for="id_override_reason">Book anyway — reason' in html
    [message] = [str(m) for m in refused.context["messages"]]
    assert message.startswith("Not booked: Session 1: The patient already has an active") and "(rule 10:" in message
    assert 'name="override_reason"' in refused.content.decode()
    second = Series.objects.exclude(pk=active.pk).get(patient=patient)
    assert second.override_reason == "second course, ordered by Dr Ruiz"
    assert booked.redirect_chain[-1][0] == reverse("staff:patient", args=[patient.pk])
    event = AuditEvent.objects.get(series=second, action="booked")
    assert "beside another active series: second course, ordered by Dr Ruiz" in event.detail
    assert "beside another active series: second course" in booked.content.decode()


def test_a_preview_with_the_reason_shows_the_series_bookable(scheduler, patient, induction, active, later):
    form = {"protocol": induction.pk, "first_start": wall(later + timedelta(weeks=2), 9), "chair": "",
            "override_reason": "second course", "action": "preview"}  # fmt: skip

    preview = scheduler.post(reverse("staff:book-series", args=[patient.pk]), form)

    assert preview.context["plan"]["bookable"]
    assert "fit, beside the patient's other active series (second course)." in preview.content.decode()
    assert Series.objects.filter(patient=patient).count() == 1


def test_a_visit_of_another_series_too_close_is_named_with_its_session_and_rule(
    scheduler, patient, induction, booster, later
):
    series_book(patient=patient, protocol=booster, first_start=datetime.combine(later, time(9)))
    form = {"protocol": induction.pk, "first_start": wall(later, 13), "chair": "", "action": "preview"}

    preview = scheduler.post(reverse("staff:book-series", args=[patient.pk]), form)

    [row] = preview.context["plan"]["rows"]
    assert (row["number"], row["conflict"].code, row["conflict"].rule) == (1, "patient_gap", 10)
    html = preview.content.decode()
    assert "<strong>Session 1</strong>: The patient has a visit of another series on" in html
    assert "Rule 10" in html and "Book anyway" not in html
