"""The REST API against its own OpenAPI schema: schemathesis generates requests from /api/schema/,
valid and invalid, sends them in-process to the Django WSGI app as a clinic admin, and checks
that no answer is a server error and every answer is one the schema documents (status code,
content type, body).

Random ids and foreign keys would almost all miss, so the hooks below offer the ids of a small
realistic clinic as an alternative to whatever was generated: requests then reach booking,
rescheduling and the rest, not only the 404 and "no such clinic" paths. They also offer what the
default strategies never generate: numbers beyond a float or a bigint, days at the calendar's
ends, JSON nested past the parser's stack. Generation is
deterministic (a fixed seed, derandomized): a failure here fails the same way on every run.
"""

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import Group, User
from django.core import signals
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from notifications.models import Message, ReminderRule
from scheduler.wsgi import application
from sessions.roles import CLINIC_ADMIN
from sessions.services import series_book
from tests.factories import clinic_make, patient_make, protocol_make, staffing_make

# CI runs the fuzzing phase, 50 cases per operation: about 2,000 requests, well under a minute.
# The coverage phase tries every boundary of every field, about 4,400 more requests that double
# the time; API_FUZZ_COVERAGE=1 adds it for a deeper run, before a release or after an API change.
DEEP = os.environ.get("API_FUZZ_COVERAGE") == "1"
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20260105,
        "generation": {
            "max-examples": 50,
            "deterministic": True,
            # No example database: a run must not depend on what an earlier run found.
            "database": "none",
            # We send a real token; generated Authorization headers and cookies would only test DRF.
            "with-security-parameters": False,
        },
        "phases": {"coverage": {"enabled": DEEP}},
    }
)
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application, config=CONFIG)


def invalid_bodies_are_rejected(ctx, response, case) -> bool | None:
    """schemathesis's negative_data_rejection, for request bodies only. Query strings are lenient on
    purpose, as DRF makes them: a malformed limit or offset falls back to the default page, and an
    empty filter (?status=) filters nothing. A body the schema forbids must never be accepted."""
    negated = {
        location for location, info in (case.meta.components if case.meta else {}).items() if info.mode.is_negative
    }
    if negated and negated <= {ParameterLocation.BODY}:
        return negative_data_rejection(ctx, response, case)
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    invalid_bodies_are_rejected,
]

# Ids of the fixture's rows, by path segment (/api/<resource>/{id}) and by field name.
KNOWN: dict[str, int] = {}
_FIELD_RESOURCE = {
    "clinic": "clinics",
    "chair": "chairs",
    "protocol": "protocols",
    "patient": "patients",
    "series": "series",
    "session": "sessions",
}


def _with_known_ids(values: Any, resource_of: dict[str, str]) -> st.SearchStrategy:
    """The generated values, or the same with each integer id swapped for a row that exists.

    Only integers are swapped: in a case generated to be invalid, an id that is not an integer may
    be the very fault, and swapping it would make the case valid behind the checks' back."""
    if not isinstance(values, dict):
        return st.just(values)
    swappable = {
        key: KNOWN[resource]
        for key, resource in resource_of.items()
        if resource in KNOWN and type(values.get(key)) is int
    }
    if not swappable:
        return st.just(values)
    return st.one_of(st.just(values), st.just({**values, **swappable}))


# What the default strategies never produce, each of which was a 500: an id or count beyond any
# float (1e400, which json.dumps cannot write: the body goes as bytes), beyond PostgreSQL's bigint,
# or not whole (1.5 was taken for id 1); a day at either end of Python's calendar; JSON nested
# deeper than Python's parser can recurse.
BEYOND_BIGINT = 2**63
DAYS_BEYOND_THE_CALENDAR = ["9999-12-31", "0001-01-01"]
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000


def _hostile_bodies(values: Any) -> list[Any]:
    """Variants of a generated body: its integers all beyond a float, all beyond bigint, all
    fractional; and a body nested too deep."""
    variants: list[Any] = [DEEP_JSON]
    integers = [key for key, value in values.items() if type(value) is int] if isinstance(values, dict) else []
    if integers:
        marked = json.dumps({**values, **dict.fromkeys(integers, "<1e400>")})
        variants += [
            marked.replace('"<1e400>"', "1e400").encode(),
            {**values, **dict.fromkeys(integers, BEYOND_BIGINT)},
            {**values, **{key: values[key] + 0.5 for key in integers}},
        ]
    return variants


def _hostile_queries(values: Any, names: set[str]) -> list[Any]:
    """Variants of a generated query: its integers all beyond bigint; a day beyond the calendar in
    a known clinic (a day alone is refused before it is read)."""
    if not isinstance(values, dict):
        return []
    integers = [key for key, value in values.items() if type(value) is int]
    variants = [{**values, **dict.fromkeys(integers, BEYOND_BIGINT)}] if integers else []
    if {"clinic", "date"} <= names and "clinics" in KNOWN:
        variants += [{**values, "clinic": KNOWN["clinics"], "date": day} for day in DAYS_BEYOND_THE_CALENDAR]
    return variants


def _or_hostile(known: st.SearchStrategy, hostile: list[Any]) -> st.SearchStrategy:
    return st.one_of(known, st.sampled_from(hostile)) if hostile else known


@schema.hook("flatmap_path_parameters")
def _existing_path_ids(context, path_parameters):
    resource = context.operation.path.split("/")[2]  # /api/<resource>/{id}/...
    return _with_known_ids(path_parameters, {"id": resource})


@schema.hook("flatmap_query")
def _existing_query_ids(context, query):
    names = {parameter.name for parameter in context.operation.query}
    return _or_hostile(_with_known_ids(query, _FIELD_RESOURCE), _hostile_queries(query, names))


@schema.hook("flatmap_body")
def _existing_body_ids(context, body):
    return _or_hostile(_with_known_ids(body, _FIELD_RESOURCE), _hostile_bodies(body))


@pytest.fixture
def api_token(db) -> str:
    user = User.objects.create_user(username="fuzz-admin")
    user.groups.add(Group.objects.get(name=CLINIC_ADMIN))
    return Token.objects.create(user=user).key


@pytest.fixture
def clinic_data(db, settings) -> Iterator[None]:
    """A clinic as a real one looks: hours, chairs, staffing, protocols, a patient with a series."""
    settings.REMINDER_KICK_ON_BOOKING = False  # no broker here; nothing is sent
    clinic = clinic_make(chairs=3, opens="08:00", closes="18:00")
    staffing_make(clinic, nurses=2, per_nurse=3)
    induction = protocol_make(clinic, kind="induction")
    protocol_make(clinic, kind="booster")
    patient = patient_make(clinic, phone="+16025550142")
    start = (timezone.now() + timedelta(days=3)).astimezone(clinic.zone).replace(hour=10, minute=0, tzinfo=None)
    series = series_book(patient=patient, protocol=induction, first_start=start)
    KNOWN.update(
        {
            "clinics": clinic.pk,
            "chairs": clinic.chairs.first().pk,
            "protocols": induction.pk,
            "patients": patient.pk,
            "series": series.pk,
            "sessions": series.sessions.order_by("number").first().pk,
            "messages": Message.objects.filter(session__series=series).first().pk,
            "reminder-rules": ReminderRule.objects.filter(clinic=clinic).first().pk,
        }
    )
    yield
    KNOWN.clear()


@pytest.fixture
def _keep_test_connection():
    """Django closes "obsolete" connections at the start and end of each request. Inside a test's
    transaction that would end the transaction; Django's own test client unhooks it the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@schema.parametrize()
# The clinic and the token are meant to outlive one example: every request of an operation works
# on the same clinic, as requests to a live server would.
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.usefixtures("clinic_data", "_keep_test_connection")
def test_the_api_answers_every_generated_request_as_its_schema_documents(case, api_token):
    case.call_and_validate(headers={"Authorization": f"Token {api_token}"}, checks=CHECKS)


# What the fuzzer found, pinned: each of these was a 500 or a schema violation before its fix, and
# a random search is not bound to hit it again.


@pytest.fixture
def admin(client, api_token):
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {api_token}"
    return client


def test_a_page_limit_beyond_any_database_integer_is_capped_not_a_server_error(admin, clinic_data):
    answer = admin.get("/api/clinics/", {"limit": 10**40})

    assert answer.status_code == 200
    assert answer.json()["count"] == 1


def test_any_other_path_under_the_api_answers_a_json_404_even_to_a_post(admin):
    answer = admin.post("/api/sessions/0.5/cancel/", {"reason": "x"}, content_type="application/json")

    assert answer.status_code == 404
    assert answer.json() == {"detail": "Not found."}


def test_a_form_encoded_body_is_refused_rather_than_read_as_no_change(admin, clinic_data):
    answer = admin.patch(f"/api/clinics/{KNOWN['clinics']}/", "opening_hours=x", "application/x-www-form-urlencoded")

    assert answer.status_code == 415


def test_an_opening_hour_with_an_offset_is_refused_rather_than_the_offset_dropped(admin, clinic_data):
    hours = [{"weekday": 0, "opens": "08:00+02:00", "closes": "18:00"}]

    answer = admin.patch(f"/api/clinics/{KNOWN['clinics']}/", {"opening_hours": hours}, "application/json")

    assert answer.status_code == 400
    assert "opens" in answer.json()["opening_hours"]["0"]
