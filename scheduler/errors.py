"""Error tracking with Sentry, off unless SENTRY_DSN is set, and nothing of a patient in what leaves.

The settings start it, as every process of the service loads them before it does any work: the
web under gunicorn or runserver, manage.py commands, and the Celery worker and beat, which read
their configuration from the settings as they start (so the worker is set up before it forks its
children, as Sentry's Celery integration asks).

What an event keeps is chosen by allow-list, not by looking for patient data, which cannot be
found: a name is a word like any other. It keeps what says what failed and where: the exception's
type and stack (module, function, file, line and the source lines there, which are code; never a
frame's variables, which hold patients), the route, the request's method and URL path with link
tokens cut, a few headers that say nothing of the person, the logger's name, a Celery task's name
and id, release and environment. Everything else goes, and with it every message an exception or
log line carries: "no mobile number for Jane Doe" names her, and no pattern can tell. The type and
the stack tell an error from another; the process's own log has the text. Breadcrumbs are not
kept at all: theirs are the log lines, queries and Redis keys before the error, whose texts are
what is dropped here, and without them a breadcrumb says nothing.
"""

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration

from scheduler.logs import redact

Event = dict[str, Any]
# What to keep of a value: True for all of it, a dict for the keys it names (each with its own
# spec), a one-spec list for each item of a list, a function for a value made safe.
Spec = bool | dict[str, Any] | list[Any] | Callable[[Any], Any]
# Request headers that describe the client and the body, never the person or their session.
_HEADERS = frozenset({"user-agent", "content-type", "content-length"})


def error_tracking_start(*, dsn: str, environment: str, release: str, traces_sample_rate: float) -> bool:
    """Send errors to Sentry at `dsn`, if one is given; True when it does."""
    if not dsn:
        return False
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release or None,
        integrations=[DjangoIntegration(transaction_style="url"), CeleryIntegration()],
        # Collected as little as the SDK can, category by category (what send_default_pii=False
        # did, which the SDK now deprecates: an empty data_collection would collect everything).
        # event_scrub below is what guarantees it; this keeps the rest out of memory and off the wire.
        data_collection={
            "user_info": False,
            "cookies": {"mode": "off"},
            "http_headers": {"request": {"mode": "allowlist", "terms": sorted(_HEADERS)}},
            "http_bodies": [],
            "url_query_params": {"mode": "off"},
            "graphql": {"document": False, "variables": False},
            "gen_ai": {"inputs": False, "outputs": False},
            "database_query_data": False,
            "queues": False,
            "stack_frame_variables": False,
        },
        # A log line's text is not sent; the stack of the call that logged it is, to tell one from another.
        attach_stacktrace=True,
        # 0 starts no transaction at all, rather than starting them to drop them.
        traces_sample_rate=traces_sample_rate or None,
        # Our trace ids and Sentry key are nobody else's business: Twilio gets no `baggage` header.
        trace_propagation_targets=[],
        before_send=event_scrub,
        before_send_transaction=event_scrub,
        before_breadcrumb=_breadcrumb_drop,
    )
    return True


def event_scrub(event: Event, hint: dict[str, Any]) -> Event:
    """The event with only what `_EVENT` allows, and a log event's text replaced by who logged it."""
    kept = _kept(event, _EVENT)
    if "logentry" in event or "message" in event:
        kept["logentry"] = {"message": f"{event.get('level', 'error')} logged by {event.get('logger', 'a caller')}"}
    return kept


def _breadcrumb_drop(crumb: dict[str, Any], hint: dict[str, Any]) -> None:
    return None


def _url_kept(url: str) -> str:
    """The URL without query string or fragment, its link tokens cut."""
    return redact(urlsplit(url)._replace(query="", fragment="").geturl())


def _headers_kept(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower() in _HEADERS}


# Ops whose span description is code (a SQL statement without its parameters, a template's, a
# view's, a middleware's or a task's name). Others describe data: a cache or Redis key, a URL.
_CODE_SPANS = frozenset(
    {
        "db",
        "template.render",
        "view.render",
        "middleware.django",
        "event.django",
        "queue.submit.celery",
        "queue.process",
    }
)
_SPAN_KEYS = frozenset(
    {"op", "span_id", "parent_span_id", "trace_id", "start_timestamp", "timestamp", "status", "origin"}
)


def _span_kept(span: dict[str, Any]) -> dict[str, Any]:
    kept = {key: value for key, value in span.items() if key in _SPAN_KEYS}
    if span.get("op") in _CODE_SPANS and "description" in span:
        kept["description"] = span["description"]
    return kept


_FRAME = dict.fromkeys(
    ("filename", "abs_path", "module", "function", "lineno", "in_app", "pre_context", "context_line", "post_context"),
    True,
)
_STACKTRACE = {"frames": [_FRAME]}
_EVENT: dict[str, Spec] = {
    **dict.fromkeys(
        ("event_id", "timestamp", "start_timestamp", "type", "level", "platform", "logger", "server_name"), True
    ),
    **dict.fromkeys(("release", "environment", "dist", "sdk", "modules", "fingerprint", "measurements"), True),
    # The route ("/r/{token}"); the path itself, tokens cut, where no route matched.
    "transaction": redact,
    "transaction_info": {"source": True},
    "exception": {
        "values": [
            {
                "type": True,
                "module": True,
                "mechanism": dict.fromkeys(("type", "handled", "exception_id", "parent_id", "source"), True),
                "stacktrace": _STACKTRACE,
            }
        ]
    },
    "threads": {"values": [{"id": True, "current": True, "crashed": True, "stacktrace": _STACKTRACE}]},
    "request": {"method": True, "url": _url_kept, "headers": _headers_kept},
    "tags": {"celery_task_id": True},
    "extra": {"celery-job": {"task_name": True}},
    "contexts": {
        "runtime": True,
        "trace": dict.fromkeys(("trace_id", "span_id", "parent_span_id", "op", "status", "origin"), True),
    },
    "spans": [_span_kept],
}


def _kept(value: Any, spec: Spec) -> Any:
    if spec is True:
        return value
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return None
        kept = {key: _kept(item, spec[key]) for key, item in value.items() if key in spec}
        return {key: item for key, item in kept.items() if item not in (None, {})}
    if isinstance(spec, list):
        return [_kept(item, spec[0]) for item in value] if isinstance(value, list) else None
    if callable(spec):
        return spec(value)
    return None
