"""One structured line per request: method, path, status, duration, user id. Patient link tokens
are cut out of paths, and nothing else a patient typed or is called is logged."""

import logging
import re
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

log = logging.getLogger("scheduler.requests")

_TOKEN_PATH = re.compile(r"/r/[A-Za-z0-9_-]+")


def redact_path(path: str) -> str:
    return _TOKEN_PATH.sub("/r/…", path)


class RedactPatientTokens(logging.Filter):
    """On every handler: Django's own loggers (django.request on a 4xx, django.security.csrf)
    write the request path, and a patient link's path is a key to that patient's visit."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_path(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_path(a) if isinstance(a, str) else a for a in record.args)
        return True


class RequestLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        user = getattr(request, "user", None)
        log.info(
            "request method=%s path=%s status=%d duration_ms=%.1f user=%s",
            request.method, redact_path(request.path), response.status_code,
            (time.perf_counter() - started) * 1000, user.pk if user is not None and user.is_authenticated else "-",
        )  # fmt: skip
        return response
