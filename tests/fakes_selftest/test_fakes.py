"""The fakes, driven by the real clients the app uses: the official twilio library and Django's SMTP backend."""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from django.core.mail import EmailMessage, send_mail
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from tests.fakes import FakeTwilio, SmtpSink, error, hang, too_many_requests

PATIENT = "+15555550123"
OTHER_PATIENT = "+15555550199"
CLINIC_NUMBER = "+15555550100"


class LoopbackHttpClient(TwilioHttpClient):
    """Sends what the library addresses to api.twilio.com to the fake instead."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        return super().request(method, url.replace("https://api.twilio.com", self.base_url, 1), *args, **kwargs)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeTwilio]:
    with FakeTwilio(clock=clock) as running:
        yield running


def client_for(fake: FakeTwilio, *, auth_token: str | None = None, timeout: float | None = None) -> Client:
    http_client = LoopbackHttpClient(fake.base_url, timeout=timeout)
    return Client(fake.account_sid, auth_token or fake.auth_token, http_client=http_client)


def send(client: Client, to: str = PATIENT, body: str = "Reminder: see you Tue 6 Jan 09:00.", **extra: Any) -> Any:
    return client.messages.create(to=to, from_=CLINIC_NUMBER, body=body, **extra)


# creating messages


def test_it_creates_a_message_as_twilio_answers_it(fake: FakeTwilio) -> None:
    message = send(client_for(fake), status_callback="https://clinic.test/twilio/sms/status/")

    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued"
    assert (message.to, message.from_, message.num_segments) == (PATIENT, CLINIC_NUMBER, "1")
    assert message.date_created == datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert message.date_sent is None
    assert [m.sid for m in fake.messages] == [message.sid]


def test_it_records_each_request_with_its_form_and_credentials(fake: FakeTwilio) -> None:
    send(client_for(fake), status_callback="https://clinic.test/twilio/sms/status/")

    [request] = fake.received
    assert request.form["To"] == PATIENT
    assert request.form["StatusCallback"] == "https://clinic.test/twilio/sms/status/"
    assert request.basic_auth == (fake.account_sid, fake.auth_token)
    assert request.answered == 201 and request.sid == fake.messages[0].sid


def test_a_messaging_service_send_is_accepted_without_a_from_number(fake: FakeTwilio) -> None:
    service = "MG" + "1" * 32
    message = client_for(fake).messages.create(to=PATIENT, messaging_service_sid=service, body="Hi")

    assert (message.status, message.from_, message.messaging_service_sid) == ("accepted", None, service)


def test_wrong_credentials_are_refused(fake: FakeTwilio) -> None:
    with pytest.raises(TwilioRestException) as refused:
        send(client_for(fake, auth_token="not-the-token"))

    assert (refused.value.status, refused.value.code) == (401, 20003)
    assert fake.messages == []


def test_an_invalid_number_is_refused_with_21211(fake: FakeTwilio) -> None:
    with pytest.raises(TwilioRestException) as refused:
        send(client_for(fake), to="555-0123")

    assert (refused.value.status, refused.value.code) == (400, 21211)


@pytest.mark.parametrize(
    ("body", "segments"),
    [("a" * 160, "1"), ("a" * 161, "2"), ("€" * 80, "1"), ("Café" + "\u00a0" * 66, "1"), ("\u00a0" * 71, "2")],
)
def test_it_counts_segments_as_twilio_bills_them(fake: FakeTwilio, body: str, segments: str) -> None:
    assert send(client_for(fake), body=body).num_segments == segments


# scripted failures


def test_scripted_errors_come_first_then_messages_go(fake: FakeTwilio) -> None:
    fake.script(503, 503)
    client = client_for(fake)

    for _ in range(2):
        with pytest.raises(TwilioRestException) as unavailable:
            send(client)
        assert (unavailable.value.status, unavailable.value.code) == (503, 20503)
    send(client)

    assert [r.answered for r in fake.received] == [503, 503, 201]
    assert len(fake.messages) == 1


def test_a_permanent_error_for_one_recipient_leaves_others_alone(fake: FakeTwilio) -> None:
    fake.script_for(PATIENT, error(21610), repeat=True)
    client = client_for(fake)

    for _ in range(2):
        with pytest.raises(TwilioRestException) as opted_out:
            send(client, to=PATIENT)
        assert (opted_out.value.status, opted_out.value.code) == (400, 21610)
        assert "unsubscribed recipient" in opted_out.value.msg
    send(client, to=OTHER_PATIENT)

    assert [m.to for m in fake.messages] == [OTHER_PATIENT]


def test_too_many_requests_says_when_to_retry(fake: FakeTwilio) -> None:
    fake.script(too_many_requests(retry_after=7))

    answer = requests.post(
        f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
        data={"To": PATIENT, "From": CLINIC_NUMBER, "Body": "Hi"},
        auth=(fake.account_sid, fake.auth_token),
        timeout=5,
    )

    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
    assert answer.json()["code"] == 20429


def test_a_hang_times_the_client_out_and_stop_does_not_wait_for_it(clock: Clock) -> None:
    began = time.monotonic()
    with FakeTwilio(clock=clock) as fake:
        fake.script(hang(5), hang(5, accepted=True))
        client = client_for(fake, timeout=0.3)
        with pytest.raises(requests.exceptions.Timeout):
            send(client, body="lost on the way in")
        with pytest.raises(requests.exceptions.Timeout):
            send(client, body="lost on the way back")

        assert [r.answered for r in fake.received] == [None, None]
        assert [m.body for m in fake.messages] == ["lost on the way back"]
    assert time.monotonic() - began < 2


# reading Twilio's log back


def test_listing_filters_by_recipient_and_whole_days_sent_after(fake: FakeTwilio, clock: Clock) -> None:
    client = client_for(fake)
    clock.now = datetime(2026, 1, 4, 18, 0, tzinfo=UTC)
    send(client, body="yesterday")
    clock.now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    send(client, body="this morning")
    send(client, to=OTHER_PATIENT, body="someone else")
    clock.now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    found = client.messages.list(to=PATIENT, date_sent_after=datetime(2026, 1, 5, 11, 0, tzinfo=UTC))

    # The library sends a timestamp; Twilio filters on the day, so the caller narrows by time.
    assert fake.queries[-1].query["DateSent>"] == "2026-01-05T11:00:00Z"
    assert [m.body for m in found] == ["this morning"]


def test_listing_pages_through_next_page_uri(fake: FakeTwilio, clock: Clock) -> None:
    client = client_for(fake)
    for minute in range(3):
        clock.now = datetime(2026, 1, 5, 9, minute, tzinfo=UTC)
        send(client, body=f"message {minute}")

    found = client.messages.list(to=PATIENT, page_size=2)

    assert [m.body for m in found] == ["message 2", "message 1", "message 0"]
    assert [q.query.get("Page") for q in fake.queries] == [None, "1"]
    assert fake.queries[1].query["To"] == PATIENT


def test_a_message_still_queued_has_no_date_sent_and_is_not_listed_by_date(fake: FakeTwilio) -> None:
    client = client_for(fake)
    sid = send(client).sid
    fake.set_status(sid, "queued")

    assert client.messages.list(to=PATIENT, date_sent_after=datetime(2026, 1, 5, tzinfo=UTC)) == []
    assert [m.sid for m in client.messages.list(to=PATIENT)] == [sid]


def test_a_message_is_fetched_by_sid_with_its_latest_status(fake: FakeTwilio) -> None:
    client = client_for(fake)
    sid = send(client).sid
    fake.set_status(sid, "undelivered", error_code=30005)

    fetched = client.messages(sid).fetch()

    assert (fetched.status, fetched.error_code) == ("undelivered", 30005)
    assert fetched.date_sent == datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


# status callbacks


class CallbackReceiver:
    """A stand-in for the app's status webhook that keeps what it was sent."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], str | None]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                params = dict(urllib.parse.parse_qsl(body))
                receiver.posts.append((self.path, params, self.headers.get("X-Twilio-Signature")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/twilio/sms/status/"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> CallbackReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def test_a_status_callback_is_signed_as_twilio_signs_it(fake: FakeTwilio) -> None:
    with CallbackReceiver() as app:
        sid = send(client_for(fake), status_callback=app.url).sid

        answered = fake.send_status_callback(sid, "delivered")

    [(path, params, signature)] = app.posts
    assert answered == 204 and path == "/twilio/sms/status/"
    assert params["MessageSid"] == sid and params["MessageStatus"] == "delivered"
    assert (params["To"], params["From"], params["AccountSid"]) == (PATIENT, CLINIC_NUMBER, fake.account_sid)
    assert "ErrorCode" not in params
    assert RequestValidator(fake.auth_token).validate(app.url, params, signature)
    assert not RequestValidator("another-token").validate(app.url, params, signature)
    assert fake.message(sid).status == "delivered"


def test_an_undelivered_callback_carries_an_error_code(fake: FakeTwilio) -> None:
    sid = send(client_for(fake)).sid

    callback = fake.status_callback(sid, "undelivered", url="https://clinic.test/twilio/sms/status/")

    assert callback.params["ErrorCode"] == "30003"
    assert RequestValidator(fake.auth_token).validate(callback.url, callback.params, callback.signature)


# email


@pytest.fixture
def sink(settings: Any) -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = running.host
        settings.EMAIL_PORT = running.port
        settings.EMAIL_HOST_USER = ""
        settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = False
        settings.EMAIL_USE_SSL = False
        settings.EMAIL_TIMEOUT = 5
        yield running


def test_send_mail_arrives_in_the_sink(sink: SmtpSink) -> None:
    send_mail("Your visit on Tuesday", "See you at 09:00.", "clinic@clinic.test", ["patient@example.com"])

    [message] = sink.messages
    assert message["Subject"] == "Your visit on Tuesday"
    assert message["To"] == "patient@example.com"
    assert message.get_content().strip() == "See you at 09:00."


def test_an_attachment_arrives_whole(sink: SmtpSink) -> None:
    invite = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"
    email = EmailMessage("Préparation", "Bring a driver.", "clinic@clinic.test", ["patient@example.com"])
    email.bcc = ["audit@clinic.test"]
    email.attach("session.ics", invite, "text/calendar")
    email.send()

    [received] = sink.received
    [attachment] = received.message.iter_attachments()
    assert received.message["Subject"] == "Préparation"
    assert attachment.get_filename() == "session.ics"
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_content().replace("\r\n", "\n") == invite.replace("\r\n", "\n")
    assert received.rcpt_tos == ("patient@example.com", "audit@clinic.test")


def test_wait_for_gives_up_after_its_timeout() -> None:
    with SmtpSink() as sink, pytest.raises(TimeoutError):
        sink.wait_for(1, timeout=0.05)
