"""Texts through Twilio's official library, or into the staff-readable outbox without credentials."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Protocol

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from .base import TransportError

# Twilio's answers that retrying cannot change. Each also says something about the number.
PERMANENT_CODES = {"21610", "21211", "21614"}
TWILIO_API = "https://api.twilio.com"


@dataclass(frozen=True)
class LoggedText:
    sid: str
    body: str


class SmsTransport(Protocol):
    def send(self, *, message_id: int, to: str, body: str, status_callback: str) -> str: ...

    def sent_since(self, *, message_id: int, to: str, since: datetime) -> list[LoggedText]: ...


class RedirectingHttpClient(TwilioHttpClient):
    """Sends the library's requests to TWILIO_API_BASE_URL instead of api.twilio.com (a fake
    Twilio in tests, or a regional edge)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args, **kwargs) -> Response:
        if url.startswith(TWILIO_API):
            url = self.base_url + url[len(TWILIO_API) :]
        return super().request(method, url, *args, **kwargs)


class TwilioSms:
    def __init__(self, account_sid: str, auth_token: str, base_url: str, timeout: float) -> None:
        http = RedirectingHttpClient(base_url or TWILIO_API, timeout=timeout)
        self.client = Client(account_sid, auth_token, http_client=http)

    def send(self, *, message_id: int, to: str, body: str, status_callback: str) -> str:
        sender = (
            {"messaging_service_sid": settings.TWILIO_MESSAGING_SERVICE_SID}
            if settings.TWILIO_MESSAGING_SERVICE_SID
            else {"from_": settings.TWILIO_FROM_NUMBER}
        )
        try:
            created = self.client.messages.create(to=to, body=body, status_callback=status_callback, **sender)
        except TwilioRestException as exc:
            code = str(exc.code or "")
            transient = exc.status == 429 or exc.status >= 500
            raise TransportError(f"Twilio {exc.status} {code}".strip(), permanent=not transient, code=code) from exc
        except requests.exceptions.ConnectTimeout as exc:
            # No connection was made, so nothing can have been created: safe to retry.
            raise TransportError("Twilio unreachable") from exc
        except requests.exceptions.RequestException as exc:
            # A read timeout or a dropped connection: the text may exist at Twilio.
            raise TransportError(f"Twilio did not answer: {type(exc).__name__}", uncertain=True) from exc
        return str(created.sid)

    def sent_since(self, *, message_id: int, to: str, since: datetime) -> list[LoggedText]:
        try:
            found = self.client.messages.list(to=to, date_sent_after=since - timedelta(days=1), limit=200)
        except (TwilioRestException, requests.exceptions.RequestException) as exc:
            raise TransportError("Twilio's message log is unavailable") from exc
        return [LoggedText(str(m.sid), m.body or "") for m in found]


class OutboxSms:
    """No Twilio credentials: the text goes to a table staff read in the web UI, never nowhere."""

    def send(self, *, message_id: int, to: str, body: str, status_callback: str) -> str:
        from ..models import OutboxText

        text, _ = OutboxText.objects.get_or_create(message_id=message_id, defaults={"to": to, "body": body})
        return f"OUTBOX{text.pk}"

    def sent_since(self, *, message_id: int, to: str, since: datetime) -> list[LoggedText]:
        from ..models import OutboxText

        return [LoggedText(f"OUTBOX{t.pk}", t.body) for t in OutboxText.objects.filter(message_id=message_id)]


@cache
def _twilio(account_sid: str, auth_token: str, base_url: str, timeout: float) -> TwilioSms:
    # One client per worker process: it keeps its HTTP connections open between texts.
    return TwilioSms(account_sid, auth_token, base_url, timeout)


def sms_transport() -> SmsTransport:
    if settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN:
        return _twilio(
            settings.TWILIO_ACCOUNT_SID,
            settings.TWILIO_AUTH_TOKEN,
            settings.TWILIO_API_BASE_URL,
            settings.TWILIO_TIMEOUT_SECONDS,
        )
    return OutboxSms()


def signature_valid(*, url: str, params: dict[str, str], signature: str) -> bool:
    """Whether a webhook request carries Twilio's signature for `url` and `params`."""
    if not (settings.TWILIO_AUTH_TOKEN and signature):
        return False
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(url, params, signature)


def twiml_reply(text: str | None) -> str:
    """A TwiML answer to an inbound text: one reply message, or none."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)
