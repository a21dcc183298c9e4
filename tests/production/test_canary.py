"""A canary patient through the whole flow with real processes, then a search for them wherever
a patient's identity must never go: Redis, the logs, and the texts and emails sent.

The canary's name and MRN are unlike anything else in the project ("Zebulon Quackenbush-Xylophone",
the birth date 1911-11-11 as the MRN, since a patient has no birth-date field), so any hit is a
leak. They may be in the database and on staff pages; the test checks the database does hold
them, with the same search, so a search that silently found nothing could not pass it.
"""

import base64
import binascii
import logging
import re
import secrets
import threading
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.urls import Resolver404, resolve
from django.utils import timezone
from redis import Redis
from rest_framework.authtoken.models import Token
from twilio.request_validator import RequestValidator

from notifications import ratelimit
from notifications.models import Message, Purpose, ReminderRule
from sessions.models import Patient, Session
from sessions.roles import CLINIC_ADMIN
from tests.factories import protocol_make
from tests.notifications.conftest import FROM_NUMBER, always_open_clinic, message_id
from tests.processes import RedisServer, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="worker processes share the PostgreSQL test database"),
]

FIRST, LAST, MRN = "Zebulon", "Quackenbush-Xylophone", "MRN-1911-11-11"
# Each part on its own, so that "Quackenbush" alone or a reformatted name is still found.
CANARY = ("zebulon", "quackenbush", "xylophone", "1911-11-11")
PHONE = "+12125550187"
# An address that carries the name, as real ones do: it may reach the mail server, nowhere else.
EMAIL = "zebulon.quackenbush@example.com"
PUBLIC = "https://go.example.com"  # the workers' PUBLIC_BASE_URL (tests.processes.celery_env)
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_LINK = re.compile(r"/r/([A-Za-z0-9_-]{10,})")


def canary_in(text: str) -> list[str]:
    """Which parts of the canary `text` holds, base64 runs decoded (Celery's message bodies are)."""
    haystack = "\n".join([text, *_base64_decoded(text)]).lower()
    return [needle for needle in CANARY if needle in haystack]


def _base64_decoded(text: str) -> Iterator[str]:
    for run in _BASE64.findall(text):
        try:
            yield base64.b64decode(run + "=" * (-len(run) % 4)).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            continue


class RedisMonitor:
    """Every command the Redis runs, from MONITOR: task messages pass through the broker and are
    gone by the end of the test, where a dump of what is left would miss them."""

    def __init__(self, url: str) -> None:
        self.client = Redis.from_url(url)
        self.commands: list[str] = []
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._record, name="redis-monitor", daemon=True)
        self._thread.start()
        assert self._ready.wait(5), "MONITOR did not start"

    def _record(self) -> None:
        with self.client.monitor() as monitor:
            self._ready.set()
            while not self._stopping.is_set():
                command = monitor.next_command()
                if command is not None:
                    self.commands.append(command["command"])

    def stop(self) -> None:
        self._stopping.set()
        self.client.ping()  # one more command, so the reader wakes up and sees it should stop
        self._thread.join(timeout=5)


def redis_dump(client: Redis) -> str:
    """Every key with its value, read the way its type needs (SCAN, then TYPE)."""
    readers = {
        b"string": client.get,
        b"list": lambda key: client.lrange(key, 0, -1),
        b"set": client.smembers,
        b"zset": lambda key: client.zrange(key, 0, -1, withscores=True),
        b"hash": client.hgetall,
        b"stream": client.xrange,
    }
    lines = []
    for key in client.scan_iter(count=500):
        kind = client.type(key)
        lines.append(f"{_text(key)} ({_text(kind)}): {_text(readers.get(kind, lambda _: b'')(key))}")
    return "\n".join(lines)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return " ".join(f"{_text(k)}={_text(v)}" for k, v in value.items())
    if isinstance(value, list | set | tuple):
        return " ".join(_text(item) for item in value)
    return str(value)


def email_parts(message: EmailMessage) -> str:
    """Subject, text, HTML and the calendar invite, decoded; not the To header, which is the address."""
    parts = [str(message["Subject"])]
    for part in message.walk():
        if not part.is_multipart():
            payload = part.get_payload(decode=True) or b""
            parts.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
    return "\n".join(parts)


@pytest.fixture
def redis_monitor(redis: RedisServer) -> Iterator[RedisMonitor]:
    monitor = RedisMonitor(redis.url)
    yield monitor
    monitor.stop()


@pytest.fixture
def web_side(settings, redis: RedisServer, caplog) -> Iterator[None]:
    """This process plays the web app: its cache and the patient link's rate limits in the test's
    own Redis, the workers' public URL, and every logger recording at DEBUG."""
    settings.PUBLIC_BASE_URL = PUBLIC
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis.url}}
    settings.REDIS_URL = redis.url
    ratelimit._redis_counters.cache_clear()
    # The tick runs every second; a kick would go to the broker of this process's settings instead.
    settings.REMINDER_KICK_ON_BOOKING = False
    caplog.set_level(logging.DEBUG)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            caplog.set_level(logging.DEBUG, logger=name)
    yield
    ratelimit._redis_counters.cache_clear()


def _mail_server(record: logging.LogRecord) -> bool:
    """aiosmtpd, the SMTP sink standing in for the mail server, logs every line it receives: the
    mail server is where the patient's address is meant to go."""
    return record.name.startswith("mail.log")


def api_headers() -> dict[str, str]:
    user = User.objects.create_user(username="canary-admin")
    user.groups.add(Group.objects.get(name=CLINIC_ADMIN))
    return {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=user).key}"}


def signed_inbound(client, twilio, body: str):
    params = {"MessageSid": "SM" + secrets.token_hex(16), "From": PHONE, "To": FROM_NUMBER, "Body": body}
    signature = RequestValidator(twilio.auth_token).compute_signature(f"{PUBLIC}/twilio/sms/inbound/", params)
    return client.post("/twilio/sms/inbound/", params, HTTP_X_TWILIO_SIGNATURE=signature)


def patient_link_route_exists() -> bool:
    try:
        resolve("/r/abcdefghijkl")
    except Resolver404:
        return False
    return True


@pytest.mark.usefixtures("web_side")
def test_a_canary_patients_name_and_mrn_reach_no_redis_log_text_or_email(
    client, processes, redis, redis_monitor, twilio, smtp, caplog
):
    clinic = always_open_clinic(time_zone="America/New_York", sender_name="Harbor Wellness")
    ReminderRule.objects.filter(clinic=clinic).delete()  # only the booking confirmation goes out
    protocol = protocol_make(
        clinic, kind="booster", chair_minutes=30, preparation_instructions="Eat lightly; bring a driver."
    )
    # Production-like logging, one level deeper: DEBUG, but without DEBUG=True's SQL log.
    quiet = {"LOG_LEVEL": "DEBUG", "DJANGO_DEBUG": "false"}
    workers = [
        processes("worker", "--pool=threads", "--concurrency=2", "--loglevel=DEBUG", **quiet),
        processes("beat", "--loglevel=DEBUG", **quiet),
    ]
    api = api_headers()

    # Booked through the API, as an integrator would.
    created = client.post(
        "/api/patients/",
        {"clinic": clinic.pk, "first_name": FIRST, "last_name": LAST, "external_id": MRN, "phone": PHONE,
         "email": EMAIL, "sms_consent_at": timezone.now().isoformat(), "sms_consent_source": "intake form"},
        content_type="application/json",
        **api,
    )  # fmt: skip
    assert created.status_code == 201, created.content
    start = (timezone.now() + timedelta(days=2)).astimezone(clinic.zone).replace(hour=10, minute=0, tzinfo=None)
    booked = client.post(
        "/api/series/",
        {"patient": created.json()["id"], "protocol": protocol.pk, "starts": [start.isoformat(timespec="minutes")]},
        content_type="application/json",
        **api,
    )
    assert booked.status_code == 201, booked.content
    session = Session.objects.get(pk=booked.json()["sessions"][0]["id"])

    # The booking confirmation, text and email, sent by the real beat and worker.
    (text,) = twilio.wait_for_messages(1, timeout=30)
    (email,) = smtp.wait_for(1, timeout=30)
    assert text.to == PHONE and email["To"] == EMAIL

    # The patient replies C through the signed webhook.
    reply = signed_inbound(client, twilio, "C")
    assert reply.status_code == 200
    session.refresh_from_db()
    assert session.status == Session.Status.CONFIRMED

    # Twilio reports the text delivered.
    callback = twilio.status_callback(text.sid, "delivered")
    answer = client.post(callback.url.removeprefix(PUBLIC), callback.params, HTTP_X_TWILIO_SIGNATURE=callback.signature)
    assert answer.status_code == 200
    assert Message.objects.get(pk=message_id(text)).status == Message.Status.DELIVERED

    # The patient opens the link in the text. The page is being built beside this test: while its
    # route is missing, only this step is left out.
    link_page = ""
    if patient_link_route_exists():
        (token,) = _LINK.findall(text.body)
        page = client.get(f"/r/{token}")
        assert page.status_code == 200
        link_page = page.content.decode()

    wait_until(  # the workers have nothing left to do
        lambda: not Message.objects.filter(status__in=[*Message.PENDING, Message.Status.SENDING]).exists(),
        timeout=10,
        what="every message to be settled",
    )
    for worker in workers:
        worker.stop()
    redis_monitor.stop()

    places = {
        "Redis commands (MONITOR)": "\n".join(redis_monitor.commands),
        "Redis keys and values": redis_dump(Redis.from_url(redis.url)),
        "worker and beat logs": "\n".join(worker.output() for worker in workers),
        "this process's logs": "\n".join(
            f"{caplog.handler.format(record)} {vars(record)!r}" for record in caplog.records if not _mail_server(record)
        ),
        "texts sent to Twilio": "\n".join(r.form.get("Body", "") for r in twilio.received),
        "text replies (TwiML)": reply.content.decode(),
        "email subject": str(email["Subject"]),
        "email subject, body and invite": email_parts(email),
        "patient link page": link_page,
    }
    assert {place: canary_in(content) for place, content in places.items() if canary_in(content)} == {}

    # The search works and the places were really searched: the database holds the canary, the
    # broker carried the send task (its base64 body decoded), and the workers logged the send.
    patient = Patient.objects.values("first_name", "last_name", "external_id", "email").get(pk=created.json()["id"])
    assert canary_in(repr(patient)) == list(CANARY)
    booking_text = Message.objects.get(session=session, purpose=Purpose.BOOKED, channel="sms")
    assert f"[[{booking_text.pk}]" in "\n".join(_base64_decoded(places["Redis commands (MONITOR)"]))
    assert f"send message={booking_text.pk} channel=sms" in places["worker and beat logs"]
    if link_page:  # the link page's rate limits were counted in the Redis searched
        assert "rate:ip:" in places["Redis keys and values"]
    assert "Harbor Wellness" in places["texts sent to Twilio"] and "Harbor Wellness" in places["email subject"]
