"""Reports and /metrics: the staff reports page over a year of a 24-chair clinic's past (about
20,000 visits and 100,000 messages, bench/history.py), whole and narrowed, the CSV of its visits,
and the operator's /metrics scrape on the same database; rendered through the whole Django stack
by the test client as the staff pages are (bench/pages.py), DEBUG off."""

import calendar
import http.client
import os
import time as clock
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import Group as UserGroup
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.utils import timezone

from notifications.models import Message
from sessions.clock import local_date
from sessions.roles import SCHEDULER

from .database import database_analyze
from .history import ClinicHistory, clinic_history_build
from .load import web_server
from .measure import Group, Options, Prepare, Row, Target, captured_queries, profile_calls, time_calls

REPORT_TARGET_MS = 300
METRICS_TARGET_MS = 50
# A year's report takes the better part of a second here: fewer calls than the other pages.
CALLS = 20
# The narrowed report: induction visits on Mondays.
WEEKDAY = 0


def report_benchmarks(options: Options) -> Group:
    began = clock.perf_counter()
    history = clinic_history_build(seed=options.seed)
    analyzing = clock.perf_counter()
    database_analyze()
    analyzed = clock.perf_counter() - analyzing
    group = Group(title="Reports and metrics", description="")
    count, warmup = min(options.iterations, CALLS), options.warmup
    queries = {}
    for name, prepare, target in _measured(history):
        samples = time_calls(prepare, count=count, warmup=warmup)
        for outcome, timings in samples.items():
            group.rows.append(Row(f"{name} ({outcome})", timings, target if outcome == "ok" else None))
        queries[name] = len(captured_queries(prepare))
        if options.profile:
            group.profiles[name] = profile_calls(prepare, count=min(count, 5))
    # The same page as production serves it: gunicorn with production settings, a worker of its
    # own (one, warmed by the untimed calls), over HTTP on loopback. The target is read here: the
    # test client's rows run inside this process, which has built a year and run the groups before.
    with web_server(os.environ["REDIS_URL"], DJANGO_SECRET_KEY=settings.SECRET_KEY, GUNICORN_WORKERS="1") as port:
        prepare = _over_http(port, _session_cookie(_scheduler(history)), _year(history))
        for outcome, timings in time_calls(prepare, count=count, warmup=warmup).items():
            target = Target(REPORT_TARGET_MS) if outcome == "ok" else None
            group.rows.append(
                Row(f"reports page through gunicorn: a year, every protocol ({outcome})", timings, target)
            )
    group.description = _describe(history)
    group.notes.append(
        f"The year took {history.seconds:.1f} s to build (bulk writes), VACUUM ANALYZE {analyzed:.1f} s; the group "
        f"{clock.perf_counter() - began:.0f} s in all."
    )
    group.notes.append(_queries_note(queries, count, warmup))
    return group


def _measured(history: ClinicHistory) -> list[tuple[str, Prepare, Target | None]]:
    """(name, calls, target) of each measurement: the year up to today, as a scheduler picks it."""
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(_scheduler(history))
    year = _year(history)
    narrowed = {**year, "protocol": history.protocols["induction"].pk, "weekday": WEEKDAY}
    reports = "/staff/reports/"
    return [
        ("reports page: a year, every protocol", _get(client, reports, year, "text/html"), None),
        (
            f"reports page: a year, induction visits on {calendar.day_name[WEEKDAY]}s",
            _get(client, reports, narrowed, "text/html"),
            None,
        ),
        ("CSV of every visit counted, a year", _get(client, reports, {**year, "csv": "visits"}, "text/csv"), None),
        ("/metrics scrape", _get(client, "/metrics", {}, "text/plain", headers=_scraper()), Target(METRICS_TARGET_MS)),
    ]


def _year(history: ClinicHistory) -> dict[str, object]:
    """The year up to today, as a scheduler picks it."""
    last = local_date(timezone.now(), history.clinic.zone)
    return {"clinic": history.clinic.pk, "first": (last - timedelta(days=364)).isoformat(), "last": last.isoformat()}


def _session_cookie(user: User) -> str:
    """A signed-in session for `user`, as the sign-in page would leave it."""
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def _over_http(port: int, cookie: str, query: dict[str, object]) -> Prepare:
    path = f"/staff/reports/?{urlencode(query)}"

    def prepare():
        def call() -> str:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request("GET", path, headers={"Cookie": cookie, "Host": "127.0.0.1"})
                answer = conn.getresponse()
                body = answer.read()
            finally:
                conn.close()
            if answer.status != 200:
                return f"status {answer.status}"
            return "ok" if answer.getheader("Content-Type", "").startswith("text/html") and body else "wrong content"

        return call

    return prepare


def _scraper() -> dict[str, str]:
    """What Prometheus sends: the bearer token when one is set (without one, loopback may read)."""
    return {"Authorization": f"Bearer {settings.METRICS_TOKEN}"} if settings.METRICS_TOKEN else {}


def _get(client: Client, path: str, query: dict, wanted: str, *, headers: dict[str, str] | None = None) -> Prepare:
    url = f"{path}?{urlencode(query)}" if query else path

    def prepare():
        def call() -> str:
            response = client.get(url, headers=headers)
            if response.status_code != 200:
                return f"status {response.status_code}"
            # Only a whole answer of the kind asked for counts: a refusal or an empty body is timed apart.
            size = len(response.content)
            return "ok" if response["Content-Type"].startswith(wanted) and size else "wrong content"

        return call

    return prepare


def _scheduler(history: ClinicHistory) -> User:
    """A scheduler of the history's clinic alone, as staff_user makes them in the tests."""
    user, _ = User.objects.get_or_create(username="reports-bench", defaults={"is_staff": True})
    user.groups.add(UserGroup.objects.get(name=SCHEDULER))
    user.groups.add(UserGroup.objects.get_or_create(name=f"clinic:{history.clinic.pk}")[0])
    return user


def _describe(history: ClinicHistory) -> str:
    statuses = ", ".join(f"{n:,} {status.replace('_', '-')}" for status, n in sorted(history.statuses.items()))
    messages = ", ".join(f"{n:,} {status}" for status, n in sorted(history.message_statuses.items()))
    due = Message.objects.filter(status=Message.Status.PLANNED, due_at__lte=timezone.now()).count()
    return (
        f"The year {history.first_date} to {history.last_date} of a clinic of 24 chairs open 07:00–19:00 every day "
        f"(bench/history.py, seeded): {history.sessions:,} visits ({statuses}), in {history.series:,} series of "
        f"{history.patients:,} patients, and {history.sessions_outside:,} visits of the same series before the "
        f"year or after today; {history.messages:,} messages ({messages}; {due} planned ones due, a tick behind). "
        f"Each page is a GET through Django's test client signed in as a scheduler of that "
        f"clinic: the year's page (first = today − 364, last = today), the same narrowed to one protocol and one "
        f"weekday, its `csv=visits` download, and `/metrics` as Prometheus reads it (this process's own registry, "
        f"not a PROMETHEUS_MULTIPROC_DIR folder) with its gauges read from the same database and the broker."
    )


def _queries_note(queries: dict[str, int], count: int, warmup: int) -> str:
    counted = "; ".join(f"{name}: {n}" for name, n in queries.items())
    return f"{count} timed calls each after {warmup} untimed. Queries per call: {counted}."
