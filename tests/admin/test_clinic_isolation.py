"""The admin as a user limited to one clinic by a "clinic:<id>" group: every registered page
lists, shows, offers and changes that clinic's rows only, by the rule of the API and the staff
pages (sessions/access.py), and the pages that hold no clinic's data are closed to them."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib import admin
from django.contrib.admin.filters import RelatedFieldListFilter
from django.contrib.auth.models import Group, User
from django.db.models import Model
from django.forms import ModelChoiceField
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from rest_framework.authtoken.models import Token

from notifications.models import (
    Channel,
    ContactStatus,
    InboundSms,
    InboxText,
    Message,
    MessageTemplate,
    OutboxText,
    Purpose,
    ReminderRule,
    StaffFlag,
)
from sessions.models import (
    AuditEvent,
    Chair,
    Clinic,
    ClosedDate,
    Offer,
    Opening,
    Patient,
    Protocol,
    Recall,
    SessionMove,
    StaffingBlock,
    WaitlistEntry,
)
from sessions.roles import CLINIC_ADMIN
from tests.factories import clinic_make, patient_make, protocol_make
from tests.staff.builders import at, client_as, session_make, staff_user

pytestmark = pytest.mark.django_db

REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)
LIMITED = [CLINIC_ADMIN, "superuser"]


def clinic_rows(clinic: Clinic) -> dict[type[Model], Model]:
    """One row of every clinic model the admin shows or offers, all of `clinic`."""
    protocol = protocol_make(clinic)
    patient = patient_make(clinic)
    chair = clinic.chairs.first()
    session = session_make(clinic, protocol, chair=chair, starts_at=at(clinic, date(2026, 1, 6), 9), patient=patient)
    staff = staff_user("Scheduler", clinics=(clinic,), username=f"staff-of-{clinic.pk}")
    Token.objects.create(user=staff)
    rule = clinic.reminder_rules.first()
    message = Message.objects.create(
        session=session,
        patient=patient,
        purpose=Purpose.REMINDER,
        rule=rule,
        key="24h",
        channel=Channel.SMS,
        session_version=1,
        due_at=session.starts_at - timedelta(hours=24),
        expires_at=session.starts_at,
        recipient=patient.phone,
        provider_id=f"SM{clinic.pk:032d}",
    )
    received = datetime(2026, 1, 5, 12, tzinfo=UTC)
    entry = WaitlistEntry.objects.create(
        clinic=clinic, patient=patient, protocol=protocol, earliest=date(2026, 1, 5), latest=date(2026, 1, 9)
    )
    opening = Opening.objects.create(clinic=clinic, starts_at=session.starts_at, chair=chair, created_at=received)
    offer = Offer.objects.create(
        clinic=clinic, opening=opening, entry=entry, patient=patient, expires_at=session.starts_at, created_at=received
    )
    rows: list[Model] = [
        clinic,
        chair,
        protocol,
        patient,
        session,
        session.series,
        staff,
        rule,
        message,
        clinic.opening_hours.first(),
        ClosedDate.objects.create(clinic=clinic, date=date(2026, 12, 25)),
        StaffingBlock.objects.create(clinic=clinic, weekday=0, starts="08:00", ends="18:00", nurses=2),
        SessionMove.objects.create(
            session=session, from_starts_at=received, from_chair=chair, to_starts_at=received, to_chair=chair, via="api"
        ),
        AuditEvent.objects.create(
            at=received, via="api", action="booked", clinic=clinic, patient=patient, session=session
        ),
        MessageTemplate.objects.create(
            clinic=clinic, purpose=Purpose.REMINDER, channel=Channel.EMAIL, language="en", subject="Soon", body="{date}"
        ),
        StaffFlag.objects.create(patient=patient, session=session, message=message, kind="sms_failed", detail="x"),
        OutboxText.objects.create(message=message, to=patient.phone, body="See you"),
        ContactStatus.objects.create(patient=patient, phone=patient.phone),
        entry,
        opening,
        offer,
        Recall.objects.create(
            clinic=clinic, patient=patient, series=session.series, protocol=protocol, due_on=date(2026, 2, 3)
        ),  # fmt: skip
        InboxText.objects.create(
            inbound=InboundSms.objects.create(
                sid=f"SM-in-{clinic.pk}", from_number=patient.phone, received_at=received, command="other"
            ),
            clinic=clinic,
            patient=patient,
            session=session,
            needs_staff=True,
        ),
        # The message the admin's checks look at: an offer's, whose clinic is no session's.
        Message.objects.create(
            offer=offer,
            patient=patient,
            purpose=Purpose.OFFER,
            key="offer",
            channel=Channel.SMS,
            session_version=0,
            due_at=received,
            expires_at=session.starts_at,
            recipient=patient.phone,
        ),
    ]
    return {type(row): row for row in rows}


@pytest.fixture(autouse=True)
def _fast_passwords(settings) -> None:
    # Each test makes a few staff logins; the production hasher would take most of its time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def own(db) -> dict[type[Model], Model]:
    return clinic_rows(clinic_make(chairs=1))


@pytest.fixture
def other(db) -> dict[type[Model], Model]:
    return clinic_rows(clinic_make(chairs=1))


@pytest.fixture
def beat_task(db) -> PeriodicTask:
    return PeriodicTask.objects.create(
        name="tick",
        task="notifications.tasks.tick",
        interval=IntervalSchedule.objects.create(every=1, period="minutes"),
    )


def limited_user(kind: str, clinic: Clinic) -> User:
    """A Clinic admin, or a superuser, whom a "clinic:<id>" group keeps to `clinic`."""
    if kind == "superuser":
        user = User.objects.create_superuser("limited-root", "root@example.com", None)
    else:
        user = staff_user(kind, username="limited-admin")
        User.objects.filter(pk=user.pk).update(is_staff=True)
    user.groups.add(Group.objects.get_or_create(name=f"clinic:{clinic.pk}")[0])
    return user


@pytest.fixture(params=LIMITED)
def limited(request, own) -> Client:
    return client_as(limited_user(request.param, own[Clinic]))


def url(model: type[Model], view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def is_clinic_data(model: type[Model], rows: dict[type[Model], Model]) -> bool:
    return model in rows and model is not User


def lacks_permission(response) -> bool:
    """A list the user's role may not see. The limited superuser sees every one, so the checks
    after this run on every list for them."""
    assert response.status_code in (200, 403)
    assert response.status_code == 200 or not response.wsgi_request.user.is_superuser
    return response.status_code == 403


def choices_of(response) -> list[ModelChoiceField]:
    """Every choice an add or change page offers, in the form and its inlines (an inline row's
    hidden id is no choice: the formset looks rows up among its parent's)."""
    forms = [response.context["adminform"].form]
    forms += [inline.formset.empty_form for inline in response.context["inline_admin_formsets"]]
    fields = [field for form in forms for field in form.fields.values()]
    return [field for field in fields if isinstance(field, ModelChoiceField) and not field.widget.is_hidden]


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_it_lists_only_the_users_clinic(limited, own, other, beat_task, model):
    response = limited.get(url(model, "changelist"))

    if not is_clinic_data(model, own):
        assert response.status_code == 403
        return
    if lacks_permission(response):
        return
    changelist = response.context["cl"]
    listed = {row.pk for row in changelist.result_list}
    assert own[model].pk in listed
    assert other[model].pk not in listed
    for spec in changelist.filter_specs:
        if isinstance(spec, RelatedFieldListFilter):
            assert other[spec.field.related_model].pk not in {pk for pk, _ in spec.lookup_choices}


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_it_answers_another_clinics_pages_as_missing(limited, own, other, beat_task, model):
    row = other[model] if model in other else model._default_manager.first()
    # A model with no row yet (sign-in records, beat's solar schedules) is tried with an id that
    # exists nowhere: the admin then sends even a permitted user back to its index.
    pk, refused = (row.pk, (403, 404)) if row is not None else (0, (302, 403, 404))
    before = model._default_manager.count()

    for view in ("change", "history", "delete"):
        assert limited.get(url(model, view, pk)).status_code in refused, view
    assert limited.post(url(model, "delete", pk), {"post": "yes"}).status_code in refused
    assert model._default_manager.count() == before


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_it_offers_only_the_users_clinic_in_form_choices(limited, own, other, beat_task, model):
    pages = [url(model, "add")] + ([url(model, "change", own[model].pk)] if is_clinic_data(model, own) else [])

    for page in pages:
        response = limited.get(page)
        if not is_clinic_data(model, own):
            assert response.status_code == 403
            continue
        # 403: a read-only record's add page, or a page the role may not use.
        assert response.status_code in (200, 403)
        for field in choices_of(response) if response.status_code == 200 else []:
            offered = field.queryset.model
            assert not field.queryset.filter(pk=other[offered].pk).exists(), (page, offered)
            assert field.queryset.filter(pk=own[offered].pk).exists(), (page, offered)


def patient_form(rows: dict) -> dict:
    return dict(clinic=rows[Clinic].pk, first_name="Rae", last_name="Added", external_id="NEW-1", language="en")


def protocol_form(rows: dict) -> dict:
    return dict(
        clinic=rows[Clinic].pk,
        name="Added protocol",
        patient_name="Wellness visit",
        session_count=1,
        chair_minutes=60,
        min_gap_days=1,
        max_gap_days=1,
        fasting_hours=0,
        no_driving_hours=24,
    )


def rule_form(rows: dict, protocol: Protocol | None = None) -> dict:
    return dict(clinic=rows[Clinic].pk, protocol=protocol.pk if protocol else "", channel="sms", offset_minutes=4321)


def template_form(rows: dict) -> dict:
    return dict(clinic=rows[Clinic].pk, purpose="booked", channel="email", language="en", subject="Hi", body="{date}")


# Each case: a form naming another clinic's row, the same form naming the user's own, and the
# field that must refuse the first.
ADD_FORMS = {
    "patient": (Patient, lambda own, other: (patient_form(other), patient_form(own)), "clinic"),
    "protocol": (Protocol, lambda own, other: (protocol_form(other), protocol_form(own)), "clinic"),
    "reminder rule": (ReminderRule, lambda own, other: (rule_form(other), rule_form(own)), "clinic"),
    "reminder rule for another clinic's protocol": (
        ReminderRule,
        lambda own, other: (rule_form(own, other[Protocol]), rule_form(own, own[Protocol])),
        "protocol",
    ),
    "message template": (MessageTemplate, lambda own, other: (template_form(other), template_form(own)), "clinic"),
}


@pytest.mark.parametrize("model, forms, field", ADD_FORMS.values(), ids=ADD_FORMS.keys())
def test_it_refuses_to_add_rows_of_another_clinic(limited, own, other, model, forms, field):
    theirs, ours = forms(own, other)
    before = model.objects.count()

    refused = limited.post(url(model, "add"), theirs)
    added = limited.post(url(model, "add"), ours)

    assert refused.status_code == 200
    assert field in refused.context["adminform"].form.errors
    assert added.status_code == 302
    assert model.objects.count() == before + 1


def test_it_refuses_a_limited_user_a_new_clinic(limited, own):
    before = Clinic.objects.count()

    response = limited.post(url(Clinic, "add"), {"name": "Elsewhere", "time_zone": "America/Phoenix"})

    assert response.status_code == 403
    assert Clinic.objects.count() == before


def test_it_refuses_chairs_added_to_another_clinic_through_its_page(limited, own, other):
    clinic = other[Clinic]
    form = {"name": clinic.name, "chairs-TOTAL_FORMS": 1, "chairs-INITIAL_FORMS": 0, "chairs-0-name": "Sneaked in"}

    response = limited.post(url(Clinic, "change", clinic.pk), form)

    assert response.status_code in (403, 404)
    assert not Chair.objects.filter(name="Sneaked in").exists()


def test_its_search_does_not_find_another_clinics_patient(limited, own, other):
    response = limited.get(url(Patient, "changelist"), {"q": other[Patient].last_name})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


def test_its_actions_leave_another_clinics_rows_alone(limited, own, other):
    rule = other[ReminderRule]

    limited.post(
        url(ReminderRule, "changelist"), {"action": "delete_selected", "_selected_action": [rule.pk], "post": "yes"}
    )

    assert ReminderRule.objects.filter(pk=rule.pk).exists()


def test_its_index_lists_only_clinic_data_the_user_may_use(limited, own):
    response = limited.get(reverse("admin:index"))

    apps = {app["app_label"] for app in response.context["app_list"]}
    assert apps <= {"booking", "notifications"}


def test_it_lets_no_limited_user_widen_their_own_clinics(own, other):
    user = limited_user("superuser", own[Clinic])
    wider = Group.objects.get(name=f"clinic:{other[Clinic].pk}")
    form = {"username": user.username, "groups": [g.pk for g in user.groups.all()] + [wider.pk], "is_staff": "on"}

    response = client_as(user).post(url(User, "change", user.pk), form)

    assert response.status_code == 403
    assert not user.groups.filter(pk=wider.pk).exists()


def test_it_shows_every_clinic_to_a_user_in_no_clinic_group(own, other):
    user = staff_user(CLINIC_ADMIN, username="head-office")
    User.objects.filter(pk=user.pk).update(is_staff=True)

    response = client_as(user).get(url(Patient, "changelist"))

    assert {row.pk for row in response.context["cl"].result_list} == {own[Patient].pk, other[Patient].pk}
