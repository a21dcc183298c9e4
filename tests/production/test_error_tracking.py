"""Error tracking: what reaches Sentry when something fails, and that no patient is in it.

Errors go to a fake Sentry on loopback (tests/fakes/sentry_server.py) through the SDK's real
transport; every byte it received, decompressed, is searched for the patient.
"""

import json
import logging
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from unittest import mock

import pytest
import sentry_sdk
from django.utils import timezone

from notifications.links import link_create
from notifications.tasks import send_message
from scheduler.errors import error_tracking_start, event_scrub
from sessions.models import Patient, Session
from sessions.services import series_book
from tests.factories import patient_make, protocol_make
from tests.fakes.sentry_server import FakeSentry
from tests.notifications.conftest import always_open_clinic
from tests.production.test_deploy import manage, production_env

PHONE = "+12125550199"
EMAIL = "philippa.quigglesworth@example.org"
FIRST_NAME, LAST_NAME = "Philippa", "Quigglesworth"
NOTE = "Running late, my neighbour Bartholomew drives me"


def patient_data(*more: str) -> list[str]:
    """What must never leave: the patient's names, phone (E.164, national digits, as dialled),
    email, and anything else the test adds (a link token, a body's text, a cookie)."""
    return [FIRST_NAME, LAST_NAME, PHONE, PHONE[2:], "555-0199", EMAIL, NOTE, "Bartholomew", *more]


def leaked(raw: bytes, secrets_: list[str]) -> list[str]:
    """The secrets found in `raw` as they are, URL-encoded or JSON-escaped, in any case."""
    text = raw.decode("utf-8", "replace").lower()
    forms = {
        secret: {secret, urllib.parse.quote(secret), urllib.parse.quote_plus(secret), json.dumps(secret)[1:-1]}
        for secret in secrets_
    }
    return [secret for secret, spelled in forms.items() if any(form.lower() in text for form in spelled)]


@pytest.fixture
def sentry(request) -> Iterator[FakeSentry]:
    """Error tracking on, as SENTRY_DSN turns it on, sending to a fake Sentry; off again after, so
    no other test reports to it. Indirect parameter: SENTRY_TRACES_SAMPLE_RATE (default 0)."""
    rate = getattr(request, "param", 0.0)
    with FakeSentry() as fake:
        assert error_tracking_start(dsn=fake.dsn, environment="test", release="test-1", traces_sample_rate=rate)
        try:
            yield fake
        finally:
            sentry_sdk.get_client().close()
            sentry_sdk.get_global_scope().set_client(None)


@pytest.fixture
def patient(settings) -> Patient:
    # Booked here, not through a broker: no worker runs in these tests.
    settings.REMINDER_KICK_ON_BOOKING = False
    clinic = always_open_clinic()
    return patient_make(clinic, first_name=FIRST_NAME, last_name=LAST_NAME, phone=PHONE, email=EMAIL)


def a_visit(patient: Patient) -> Session:
    protocol = protocol_make(patient.clinic, kind="booster", chair_minutes=30)
    series = series_book(patient=patient, protocol=protocol, starts=[timezone.now() + timedelta(days=2)])
    return series.sessions.get()


def confirm_that_fails(*, session: Session, **kwargs) -> bool:
    """The bug a test needs: it logs the patient's phone and raises with their name and email,
    with the patient in its local variables."""
    patient = session.patient
    logging.getLogger("notifications.patient_actions").error("no answer from %s", patient.phone)
    raise ValueError(f"bad phone for {patient.first_name} {patient.last_name} <{patient.email}>")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("sentry", [0.0, 1.0], ids=["errors", "errors-and-traces"], indirect=True)
def test_an_error_in_a_patient_link_post_reaches_sentry_without_the_patient(sentry, live_server, patient):
    token = link_create(session=a_visit(patient))
    csrf = secrets.token_hex(16)
    url = f"{live_server.url}/r/{token}?" + urllib.parse.urlencode({"lang": "en", "phone": PHONE})
    body = {"csrfmiddlewaretoken": csrf, "action": "confirm", "driver": "yes"}
    body |= {"name": f"{FIRST_NAME} {LAST_NAME}", "phone": PHONE, "email": EMAIL, "message": NOTE}
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(body).encode(),
        headers={"Cookie": f"csrftoken={csrf}", "Referer": url, "User-Agent": "PatientPhone/1.0"},
    )

    with mock.patch("notifications.patient_views.link_confirm", confirm_that_fails):
        with pytest.raises(urllib.error.HTTPError) as answered:
            urllib.request.urlopen(request, timeout=10)
        events = sentry.wait_for("event", 2)
        # Traced, the request's transaction too, with its spans: queries, Redis, templates.
        traced = sentry.wait_for("transaction") if sentry_sdk.get_client().options["traces_sample_rate"] else []
        sentry_sdk.flush()  # and whatever else was on its way

    assert answered.value.code == 500
    assert [t["transaction"] for t in traced] == ["/r/{token}"] * len(traced)
    assert leaked(sentry.raw, patient_data(token, csrf)) == []
    [error] = [e for e in events if "exception" in e]
    [exception] = error["exception"]["values"]
    assert exception["type"] == "ValueError" and "value" not in exception
    functions = [frame["function"] for frame in exception["stacktrace"]["frames"]]
    assert functions[-2:] == ["_act_in_language", "confirm_that_fails"]
    assert all("vars" not in frame for frame in exception["stacktrace"]["frames"])
    assert error["transaction"] == "/r/{token}"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": mock.ANY,
        "User-Agent": "PatientPhone/1.0",
    }
    assert error["request"] == {"method": "POST", "url": f"{live_server.url}/r/…", "headers": headers}
    [logged] = [e for e in events if "logentry" in e]
    assert logged["logentry"] == {"message": "error logged by notifications.patient_actions"}
    [thread] = logged["threads"]["values"]
    assert "confirm_that_fails" in [frame["function"] for frame in thread["stacktrace"]["frames"]]


@pytest.mark.django_db
def test_an_error_in_a_celery_task_reaches_sentry_without_the_patient(sentry, patient):
    def send_that_fails(*, message_id: int) -> None:
        raise LookupError(f"{patient.first_name} {patient.last_name} has no mobile {patient.phone}")

    with mock.patch("notifications.sending.message_send", send_that_fails):
        send_message.apply(args=[4242])
        [event] = sentry.wait_for("event")
        sentry_sdk.flush()

    assert leaked(sentry.raw, patient_data()) == []
    [exception] = event["exception"]["values"]
    assert (exception["type"], exception["mechanism"]["type"]) == ("LookupError", "celery")
    assert exception["stacktrace"]["frames"][-1]["function"] == "send_that_fails"
    assert event["extra"] == {"celery-job": {"task_name": "notifications.tasks.send_message"}}


def test_the_settings_start_error_tracking_when_a_dsn_is_set():
    crash = f"raise LookupError('{FIRST_NAME} {LAST_NAME} {PHONE}')"
    with FakeSentry() as fake:
        crashed = manage("shell", "-c", crash, env=production_env(SENTRY_DSN=fake.dsn, SENTRY_ENVIRONMENT="staging"))
        [event] = fake.events  # the process flushed as it exited

    assert crashed.returncode != 0
    assert leaked(fake.raw, patient_data()) == []
    assert event["exception"]["values"][0]["type"] == "LookupError"
    assert event["environment"] == "staging"


def test_without_a_dsn_nothing_is_started():
    env = production_env()
    env.pop("SENTRY_DSN", None)

    shown = manage("shell", "-c", "import sentry_sdk; print(sentry_sdk.get_client().is_active())", env=env)

    # An SDK started without a DSN would still be active: its integrations hooked into everything.
    assert shown.returncode == 0 and shown.stdout.strip().splitlines()[-1] == "False", shown.stderr
    assert error_tracking_start(dsn="", environment="production", release="", traces_sample_rate=0) is False
    assert not sentry_sdk.get_client().is_active()


def test_the_scrubber_keeps_what_failed_and_where_and_drops_the_rest():
    frame = {
        "filename": "notifications/sending.py",
        "abs_path": "/app/notifications/sending.py",
        "module": "notifications.sending",
        "function": "message_send",
        "lineno": 120,
        "in_app": True,
        "context_line": "    transport.send(to=patient.phone, body=text)",
        "vars": {"patient": f"<Patient: {FIRST_NAME} {LAST_NAME}>", "to": PHONE},
    }
    event = {
        "event_id": "0" * 32,
        "level": "error",
        "platform": "python",
        "logger": "notifications.sending",
        "release": "1.4.0",
        "environment": "production",
        "transaction": "/r/AbCdEf123456",
        "transaction_info": {"source": "url"},
        "logentry": {"message": f"send to {PHONE} failed", "formatted": f"send to {PHONE} failed", "params": []},
        "message": f"{FIRST_NAME} {LAST_NAME}",
        "exception": {
            "values": [
                {
                    "type": "TransportError",
                    "module": "notifications.transports.base",
                    "value": f"{EMAIL} bounced",
                    "mechanism": {"type": "django", "handled": False, "data": {"to": EMAIL}},
                    "stacktrace": {"frames": [frame]},
                }
            ]
        },
        "request": {
            "method": "POST",
            "url": "https://scheduler.example.com/r/AbCdEf123456?phone=%2B12125550199",
            "query_string": f"phone={PHONE}",
            "data": {"message": NOTE},
            "cookies": {"sessionid": "s3cr3t"},
            "env": {"REMOTE_ADDR": "203.0.113.9"},
            "headers": {"User-Agent": "Mozilla/5.0", "Referer": "https://x/r/AbCdEf123456", "Cookie": "sessionid=s"},
        },
        "user": {"id": "7", "email": "nurse@example.com", "ip_address": "203.0.113.9"},
        "tags": {"celery_task_id": "c0ffee", "patient": LAST_NAME},
        "extra": {"celery-job": {"task_name": "notifications.tasks.send_message", "args": [9]}, "sys.argv": ["x"]},
        "contexts": {
            "runtime": {"name": "CPython", "version": "3.11.9"},
            "trace": {"trace_id": "a" * 32, "span_id": "b" * 16, "data": {"url": "/r/AbCdEf123456"}},
            "patient": {"name": FIRST_NAME},
        },
        "breadcrumbs": {"values": [{"category": "query", "message": f"SELECT … WHERE phone = '{PHONE}'"}]},
    }

    scrubbed = event_scrub(event, {})

    assert scrubbed == {
        "event_id": "0" * 32,
        "level": "error",
        "platform": "python",
        "logger": "notifications.sending",
        "release": "1.4.0",
        "environment": "production",
        "transaction": "/r/…",
        "transaction_info": {"source": "url"},
        "logentry": {"message": "error logged by notifications.sending"},
        "exception": {
            "values": [
                {
                    "type": "TransportError",
                    "module": "notifications.transports.base",
                    "mechanism": {"type": "django", "handled": False},
                    "stacktrace": {"frames": [{key: v for key, v in frame.items() if key != "vars"}]},
                }
            ]
        },
        "request": {
            "method": "POST",
            "url": "https://scheduler.example.com/r/…",
            "headers": {"User-Agent": "Mozilla/5.0"},
        },
        "tags": {"celery_task_id": "c0ffee"},
        "extra": {"celery-job": {"task_name": "notifications.tasks.send_message"}},
        "contexts": {
            "runtime": {"name": "CPython", "version": "3.11.9"},
            "trace": {"trace_id": "a" * 32, "span_id": "b" * 16},
        },
    }


def test_a_traced_transaction_keeps_timings_and_code_but_no_keys_or_urls():
    spans = [
        {"op": "db", "description": "SELECT … FROM booking_patient WHERE phone = %s", "data": {"db.params": [PHONE]}},
        {"op": "db.redis", "description": "INCR link-rate:ip:203.0.113.9", "start_timestamp": 1.0, "timestamp": 1.1},
        {"op": "http.client", "description": f"GET https://api.twilio.com/…/Messages.json?To={PHONE}"},
    ]
    transaction = {"type": "transaction", "transaction": "/r/{token}", "spans": spans, "extra": {"sys.argv": []}}

    scrubbed = event_scrub(transaction, {})

    assert scrubbed == {
        "type": "transaction",
        "transaction": "/r/{token}",
        "spans": [
            {"op": "db", "description": "SELECT … FROM booking_patient WHERE phone = %s"},
            {"op": "db.redis", "start_timestamp": 1.0, "timestamp": 1.1},
            {"op": "http.client"},
        ],
    }
