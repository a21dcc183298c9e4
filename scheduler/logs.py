"""Logs without a patient in them. One structured line per request: method, path, status,
duration, user id; and in every log line, from any logger, patient link tokens and the values of
patient searches are cut out.

The cut is made where log records are made, by a log record factory that `logging_configure`
installs when Django applies LOGGING, so in every process that sets Django up: the web under
runserver or gunicorn, the worker, beat. A filter would have to sit on every handler, and most
handlers are not ours to configure: runserver's request log (django.server), Django's DEBUG
console, gunicorn's access and error logs, Celery's task logger and its capture of stdout, a log
shipper added later. Every one of them formats records that the factory has already redacted, so
no handler, present or future, can write a token.
"""

import logging
import logging.config
import re
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

log = logging.getLogger("scheduler.requests")

_TOKEN_PATH = re.compile(r"/r/[A-Za-z0-9_-]+")
# The staff pages' and the admin's patient search (q), and parameters named for what a patient is
# called or reached at, also URL-encoded inside another URL: a sign-in redirect's `next`.
_SEARCH_VALUE = re.compile(
    r"(?:^|(?<=[?&])|(?<=%3[Ff])|(?<=%26))"
    r"((?:q|name|first_name|last_name|phone|email)(?:__\w+)?(?:=|%3[Dd]))"
    r"(?:(?!%26)[^&\s\"'])*"
)


def redact(text: str) -> str:
    """`text` without patient link tokens and the values of patient searches."""
    return _SEARCH_VALUE.sub(r"\1…", _TOKEN_PATH.sub("/r/…", text))


def logging_configure(config: dict) -> None:
    """Django's LOGGING_CONFIG: LOGGING itself, once every record is redacted as it is made."""
    make_record = logging.getLogRecordFactory()
    if not getattr(make_record, "redacts", False):
        logging.setLogRecordFactory(_redacting(make_record))
    logging.config.dictConfig(config)


def _redacting(make_record: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # any str() may raise, and a log call must not: the format alone
            message = str(record.msg)
        # Formatted here, not by the handler: an argument's str() (a request, a URL) may hold a token.
        record.msg, record.args = redact(message), ()
        return record

    make.redacts = True  # type: ignore[attr-defined]
    return make


class RequestLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        user = getattr(request, "user", None)
        log.info(
            "request method=%s path=%s status=%d duration_ms=%.1f user=%s",
            request.method, request.path, response.status_code,
            (time.perf_counter() - started) * 1000, user.pk if user is not None and user.is_authenticated else "-",
        )  # fmt: skip
        return response
