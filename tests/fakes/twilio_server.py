"""A fake Twilio REST API on loopback, for tests that drive the official ``twilio`` library.

Only the far edge is fake: the app's SMS transport, the ``twilio`` client and its HTTP stack all
run for real against this server, which answers the endpoints the transport uses (create, fetch
and list messages) as Twilio documents them, plus scripted failures and signed status callbacks.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import secrets
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

from twilio.request_validator import RequestValidator

API_VERSION = "2010-04-01"
TEST_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TEST_AUTH_TOKEN = "fake-twilio-auth-token"

# Twilio's wording for the errors tests script most often; any other code needs a message.
KNOWN_ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    21211: (400, "Invalid 'To' Phone Number"),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}

MESSAGE_STATUSES = frozenset(
    {"accepted", "scheduled", "queued", "sending", "sent", "delivered", "undelivered", "failed", "read", "canceled"}
)
# Only these have left Twilio; the others have no date_sent, so a DateSent filter never matches them.
_SENT_STATUSES = frozenset({"sent", "delivered", "undelivered", "read"})
# Used in a failed/undelivered callback when the test names no code: "Unreachable destination handset".
DEFAULT_DELIVERY_ERROR = 30003

_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
_MESSAGE_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})(T.*)?$")

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("\f^{}\\[~]|€")


# Scripted steps -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Accept:
    """Create the message and answer 201, as Twilio does; also what an int 2xx step means."""


@dataclass(frozen=True)
class ErrorReply:
    """Answer with a Twilio error body; nothing is created."""

    status: int
    code: int
    message: str
    retry_after: int | None = None

    def body(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


@dataclass(frozen=True)
class Hang:
    """Read the request, answer nothing for `seconds`, then close the connection.

    With `accepted`, Twilio got the message before the answer was lost: it is created (and
    listed), which is how a send that timed out on the client can still reach the patient.
    """

    seconds: float
    accepted: bool = False


Step = int | Accept | ErrorReply | Hang


def error(code: int, *, status: int | None = None, message: str | None = None) -> ErrorReply:
    """Twilio's error `code` (e.g. 21610) with its usual HTTP status and message."""
    known_status, known_message = KNOWN_ERRORS.get(code, (400, None))
    if message is None and known_message is None:
        raise ValueError(f"no message known for Twilio error {code}; pass message=")
    return ErrorReply(status=status or known_status, code=code, message=message or known_message or "")


def too_many_requests(retry_after: int = 1) -> ErrorReply:
    return ErrorReply(status=429, code=20429, message="Too Many Requests", retry_after=retry_after)


def hang(seconds: float, *, accepted: bool = False) -> Hang:
    return Hang(seconds=seconds, accepted=accepted)


def _as_step(step: Step) -> Accept | ErrorReply | Hang:
    if not isinstance(step, int):
        return step
    if 200 <= step < 300:
        return Accept()
    if step == 429:
        return too_many_requests()
    # Twilio's generic HTTP errors use 20000 + status (20500, 20503, ...).
    return ErrorReply(status=step, code=20000 + step, message=HTTPStatus(step).phrase)


class _Script:
    def __init__(self) -> None:
        self.steps: deque[Accept | ErrorReply | Hang] = deque()
        self.repeat_last = False

    def pop(self) -> Accept | ErrorReply | Hang | None:
        if not self.steps:
            return None
        if self.repeat_last and len(self.steps) == 1:
            return self.steps[0]
        return self.steps.popleft()


# What the fake holds and records ------------------------------------------------------------


@dataclass(frozen=True)
class FakeMessage:
    """A message as Twilio's log holds it now (the create answer showed it as queued/accepted)."""

    sid: str
    to: str
    from_: str | None
    body: str
    messaging_service_sid: str | None
    status_callback: str | None
    status: str
    date_created: datetime
    date_updated: datetime
    date_sent: datetime | None
    num_segments: int
    error_code: int | None = None


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    received_at: datetime
    answered: int | None  # the HTTP status sent back; None when the fake hung up without one
    sid: str | None  # the message this request created, if any

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        scheme, _, encoded = (self.header("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return username, password


@dataclass(frozen=True)
class StatusCallback:
    """A status callback as Twilio would POST it: send it with any HTTP client or Django's."""

    url: str
    params: dict[str, str]
    signature: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Twilio-Signature": self.signature}


@dataclass(frozen=True)
class _Answer:
    status: int = 200
    body: dict[str, object] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    hang: float | None = None


# The fake -----------------------------------------------------------------------------------


class FakeTwilio:
    """Twilio's Messages API on 127.0.0.1, in a background thread.

    Use as a context manager or call start()/stop(). Requests need HTTP Basic auth with the
    account sid and auth token given here. Accepted messages are logged as already "sent"
    (date_sent = acceptance time), as they are by the time an app reconciles.
    """

    def __init__(
        self,
        account_sid: str = TEST_ACCOUNT_SID,
        auth_token: str = TEST_AUTH_TOKEN,
        *,
        clock: Callable[[], datetime] | None = None,
        messaging_service_number: str = "+15005550006",
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._clock = clock or (lambda: datetime.now(UTC))
        self._messaging_service_number = messaging_service_number
        self._lock = threading.Condition()
        self._received: list[ReceivedRequest] = []
        self._queries: list[ReceivedRequest] = []
        self._messages: dict[str, FakeMessage] = {}
        self._script = _Script()
        self._scripts_for: dict[str, _Script] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # Seconds each create waits *after* the message is accepted: a slow answer, so that a
        # client killed meanwhile leaves a text Twilio has but its sender never recorded.
        self.latency = 0.0
        # Recipients whose message log answers with a page the library cannot read (a proxy's
        # error page served as 200), and a hook run as each log query arrives: a test can look
        # at the database while the app waits for Twilio.
        self.unreadable_log_for: set[str] = set()
        self.on_log_query: Callable[[dict[str, str]], None] | None = None

    # lifecycle

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("FakeTwilio is already running")
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler, fake=self)
        # A short poll interval: shutdown() waits for the next poll, and stop() runs after every test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-twilio", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes handlers that are hanging on purpose
        self._server.shutdown()
        self._server.server_close()  # joins the handler threads
        assert self._thread is not None
        self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeTwilio is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """Stands in for https://api.twilio.com (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    # scripting

    def script(self, *steps: Step, repeat: bool = False) -> None:
        """Queue answers for the next create requests, in order; then the default (accept).

        With `repeat`, the last step answers every request after it.
        """
        with self._lock:
            self._script.steps.extend(_as_step(s) for s in steps)
            self._script.repeat_last = repeat

    def script_for(self, to: str, *steps: Step, repeat: bool = False) -> None:
        """Like script(), but only for messages to `to`; used before the general script."""
        with self._lock:
            script = self._scripts_for.setdefault(to, _Script())
            script.steps.extend(_as_step(s) for s in steps)
            script.repeat_last = repeat

    def reset(self) -> None:
        """Forget requests, messages and scripts (for a fake shared by several tests)."""
        with self._lock:
            self._received.clear()
            self._queries.clear()
            self._messages.clear()
            self._script = _Script()
            self._scripts_for.clear()

    # what happened

    @property
    def received(self) -> list[ReceivedRequest]:
        """Every create-message request (POST), whatever it was answered, oldest first."""
        with self._lock:
            return list(self._received)

    @property
    def queries(self) -> list[ReceivedRequest]:
        """Every GET (list or fetch of messages), oldest first."""
        with self._lock:
            return list(self._queries)

    @property
    def messages(self) -> list[FakeMessage]:
        """Messages Twilio accepted, oldest first."""
        with self._lock:
            return list(self._messages.values())

    def messages_to(self, to: str) -> list[FakeMessage]:
        return [m for m in self.messages if m.to == to]

    def message(self, sid: str) -> FakeMessage:
        with self._lock:
            return self._messages[sid]

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[FakeMessage]:
        """Block until at least `count` messages were accepted (e.g. sent by a Celery worker)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"{len(self._messages)} message(s) accepted within {timeout}s, wanted {count}")
            return list(self._messages.values())

    # Twilio's side of delivery

    def set_status(self, sid: str, status: str, *, error_code: int | None = None) -> FakeMessage:
        """Move a message to `status` in Twilio's log, as the carrier's reports would."""
        if status not in MESSAGE_STATUSES:
            raise ValueError(f"unknown Twilio message status {status!r}")
        now = self._now()
        with self._lock:
            message = self._messages[sid]
            date_sent = (message.date_sent or now) if status in _SENT_STATUSES else None
            message = replace(message, status=status, date_sent=date_sent, date_updated=now, error_code=error_code)
            self._messages[sid] = message
            return message

    def status_callback(
        self,
        sid: str,
        status: str,
        *,
        url: str | None = None,
        auth_token: str | None = None,
        error_code: int | None = None,
    ) -> StatusCallback:
        """Move the message to `status` and return the signed callback Twilio would POST.

        `url` defaults to the message's StatusCallback; `auth_token` to this fake's.
        """
        if status in ("failed", "undelivered") and error_code is None:
            error_code = DEFAULT_DELIVERY_ERROR
        message = self.set_status(sid, status, error_code=error_code)
        target = url or message.status_callback
        if not target:
            raise ValueError(f"message {sid} has no StatusCallback; pass url=")
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "From": message.from_ or "",
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": message.to,
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        signature = RequestValidator(auth_token or self.auth_token).compute_signature(target, params)
        return StatusCallback(url=target, params=params, signature=signature)

    def send_status_callback(
        self,
        sid: str,
        status: str,
        *,
        url: str | None = None,
        auth_token: str | None = None,
        error_code: int | None = None,
        timeout: float = 5.0,
    ) -> int:
        """status_callback(), then POST it; returns the HTTP status the app answered."""
        callback = self.status_callback(sid, status, url=url, auth_token=auth_token, error_code=error_code)
        request = urllib.request.Request(
            callback.url,
            data=urllib.parse.urlencode(callback.params).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", **callback.headers},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as answered:
            return answered.code

    # serving (called from handler threads)

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)

    def _answer(
        self, method: str, path: str, query: dict[str, str], form: dict[str, str], headers: dict[str, str]
    ) -> _Answer:
        request = ReceivedRequest(
            method=method,
            path=path,
            query=query,
            form=form,
            headers=headers,
            received_at=self._now(),
            answered=None,
            sid=None,
        )
        collection, single = _MESSAGES_PATH.match(path), _MESSAGE_PATH.match(path)
        route = collection or single
        creating = collection is not None and method == "POST"
        if request.basic_auth != (self.account_sid, self.auth_token):
            answer = replace(_error_answer(error(20003)), headers=(("WWW-Authenticate", 'Basic realm="Twilio API"'),))
        elif route is None or route["account"] != self.account_sid:
            answer = _error_answer(ErrorReply(404, 20404, f"The requested resource {path} was not found"))
        elif creating:
            return self._create(request)
        elif collection and method == "GET":
            answer = self._list(path, query)
        elif single and method == "GET":
            answer = self._fetch(single["sid"])
        else:
            answer = _error_answer(ErrorReply(405, 20004, "Method not allowed"))
        with self._lock:
            (self._received if creating else self._queries).append(replace(request, answered=answer.status))
        return answer

    def _create(self, request: ReceivedRequest) -> _Answer:
        message: FakeMessage | None = None
        with self._lock:
            step = self._next_step(request.form.get("To", ""))
            problem = _invalid(request.form)
            if isinstance(step, ErrorReply):
                answer = _error_answer(step)
            elif isinstance(step, Hang):
                answer = _Answer(hang=step.seconds)
                if step.accepted and problem is None:
                    message = self._accept(request.form, request.received_at)
            elif problem is not None:
                answer = _error_answer(problem)
            else:
                message = self._accept(request.form, request.received_at)
                answer = _Answer(status=201, body=self._json(_as_created(message)))
            answered = None if answer.hang is not None else answer.status
            self._received.append(replace(request, answered=answered, sid=message.sid if message else None))
            self._lock.notify_all()
        if self.latency:
            self._stopping.wait(self.latency)
        return answer

    def _next_step(self, to: str) -> Accept | ErrorReply | Hang:
        own = self._scripts_for.get(to)
        return (own.pop() if own else None) or self._script.pop() or Accept()

    def _accept(self, form: dict[str, str], now: datetime) -> FakeMessage:
        service = form.get("MessagingServiceSid")
        message = FakeMessage(
            sid="SM" + secrets.token_hex(16),
            to=form["To"],
            from_=form.get("From") or self._messaging_service_number,
            body=form["Body"],
            messaging_service_sid=service,
            status_callback=form.get("StatusCallback"),
            status="sent",
            date_created=now,
            date_updated=now,
            date_sent=now,
            num_segments=segments(form["Body"]),
        )
        self._messages[message.sid] = message
        return message

    def _fetch(self, sid: str) -> _Answer:
        with self._lock:
            message = self._messages.get(sid)
        if message is None:
            return _error_answer(ErrorReply(404, 20404, f"The requested resource {sid} was not found"))
        return _Answer(body=self._json(message))

    def _list(self, path: str, query: dict[str, str]) -> _Answer:
        if self.on_log_query is not None:
            self.on_log_query(query)
        if query.get("To") in self.unreadable_log_for:
            return _Answer(body={"unexpected": "page"})
        try:
            keep = _filter(query)
            page = int(query.get("Page", "0"))
            page_size = min(max(int(query.get("PageSize", "50")), 1), 1000)
        except ValueError as bad:
            return _error_answer(ErrorReply(400, 20001, str(bad)))
        with self._lock:
            newest_first = [m for m in reversed(self._messages.values()) if keep(m)]
        newest_first.sort(key=lambda m: m.date_created, reverse=True)
        start = page * page_size
        chunk = newest_first[start : start + page_size]
        filters = {k: v for k, v in query.items() if k in ("To", "From", "DateSent", "DateSent<", "DateSent>")}

        def page_uri(number: int) -> str:
            return f"{path}?{urllib.parse.urlencode({**filters, 'PageSize': page_size, 'Page': number})}"

        body: dict[str, object] = {
            "messages": [self._json(m) for m in chunk],
            "start": start,
            "end": start + max(len(chunk) - 1, 0),
            "page": page,
            "page_size": page_size,
            "uri": page_uri(page),
            "first_page_uri": page_uri(0),
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "next_page_uri": page_uri(page + 1) if start + page_size < len(newest_first) else None,
        }
        return _Answer(body=body)

    def _json(self, message: FakeMessage) -> dict[str, object]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message.sid}.json"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": message.body,
            "date_created": format_datetime(message.date_created),
            "date_sent": format_datetime(message.date_sent) if message.date_sent else None,
            "date_updated": format_datetime(message.date_updated),
            "direction": "outbound-api",
            "error_code": message.error_code,
            "error_message": None,
            "from": message.from_,
            "messaging_service_sid": message.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(message.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": message.status,
            "subresource_uris": {"media": uri.removesuffix(".json") + "/Media.json"},
            "to": message.to,
            "uri": uri,
        }


def segments(body: str) -> int:
    """How many SMS segments Twilio bills for `body` (GSM-7 if it can, else UCS-2)."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in body):
        septets = sum(2 if c in _GSM7_EXTENDED else 1 for c in body)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def _as_created(message: FakeMessage) -> FakeMessage:
    """The message as the create answer shows it: not sent yet, sender unknown for a service."""
    status = "accepted" if message.messaging_service_sid else "queued"
    sender = None if message.messaging_service_sid else message.from_
    return replace(message, status=status, date_sent=None, from_=sender)


def _invalid(form: dict[str, str]) -> ErrorReply | None:
    if not form.get("To"):
        return error(21604)
    if not _E164.match(form["To"]):
        return error(21211, message=f"The 'To' number {form['To']} is not a valid phone number.")
    if not (form.get("From") or form.get("MessagingServiceSid")):
        return error(21603)
    if not form.get("Body"):
        return error(21602)
    if len(form["Body"]) > 1600:
        return error(21617)
    return None


def _filter(query: dict[str, str]) -> Callable[[FakeMessage], bool]:
    """Twilio's list filters. DateSent compares whole UTC days, inclusive, as Twilio documents;
    the library sends DateSent> as YYYY-MM-DDTHH:MM:SSZ and only the day counts, so a caller
    gets that whole day back and must narrow by time itself."""
    on, before, after = (_day(query.get(key)) for key in ("DateSent", "DateSent<", "DateSent>"))

    def keep(m: FakeMessage) -> bool:
        if query.get("To") and m.to != query["To"]:
            return False
        if query.get("From") and m.from_ != query["From"]:
            return False
        if on is None and before is None and after is None:
            return True
        if m.date_sent is None:
            return False
        day = m.date_sent.date()
        return (on is None or day == on) and (before is None or day <= before) and (after is None or day >= after)

    return keep


def _day(value: str | None) -> date | None:
    if not value:
        return None
    match = _DAY.match(value)
    if not match:
        raise ValueError(f"Invalid value for DateSent: {value}")
    return date.fromisoformat(match[1])


def _error_answer(reply: ErrorReply) -> _Answer:
    headers = (("Retry-After", str(reply.retry_after)),) if reply.retry_after is not None else ()
    return _Answer(status=reply.status, body=reply.body(), headers=headers)


def _single_values(parsed: dict[str, list[str]]) -> dict[str, str]:
    return {key: values[-1] for key, values in parsed.items()}


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins handler threads: stop() leaves none behind

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *, fake: FakeTwilio) -> None:
        self.fake = fake
        super().__init__(address, handler)

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        # A client that hung up before its answer (a killed worker, a client timeout) is expected.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive thread at stop()
    timeout = 2  # a client that connects and sends nothing cannot hold up stop() for long

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        answer = self.server.fake._answer(
            self.command,
            url.path,
            _single_values(urllib.parse.parse_qs(url.query, keep_blank_values=True)),
            _single_values(urllib.parse.parse_qs(raw, keep_blank_values=True)),
            dict(self.headers.items()),
        )
        if answer.hang is not None:
            self.server.fake._stopping.wait(answer.hang)
            return
        payload = json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: pytest output is for failures, and fake.received has every request."""
