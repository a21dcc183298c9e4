"""No log line carries a patient link token or what staff searched for: whichever logger writes
it, through whichever handler, in every process `make run` and a deployment start (runserver or
gunicorn, worker, beat)."""

import contextlib
import logging
import os
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client

from scheduler.logs import redact
from tests import processes
from tests.processes import ChildProcess, WebProcess, free_port, wait_until

NAME = "Zelda Quist"


@pytest.fixture
def token() -> str:
    return secrets.token_urlsafe(9)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """`make run`'s defaults but the test's database: dev settings, the filesystem broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST", "REDIS_URL"))}
    env.update(
        DJANGO_SETTINGS_MODULE="scheduler.settings.dev",
        DATABASE_URL=processes.test_database_url(),
        CELERY_FILESYSTEM_BROKER_DIR=str(tmp_path / "broker"),
        PYTHONUNBUFFERED="1",
    )
    return env


def visit(base_url: str, token: str) -> None:
    """A patient's link and a staff search for a patient (sent to the login page, which is given
    the search again, URL-encoded, as where to go next). A server may write a request's line after
    its answer: wait for the last one before reading the log."""
    for path in (f"/r/{token}", "/staff/patients/?" + urllib.parse.urlencode({"q": NAME, "page": 2})):
        try:
            urllib.request.urlopen(base_url + path, timeout=10).close()
        except urllib.error.HTTPError:
            pass


@contextlib.contextmanager
def lines_written(logger: logging.Logger) -> Iterator[list[tuple[str, str]]]:
    """(logger name, message) of each record as a handler added to `logger`, with no filter of
    the project's, writes it."""
    lines: list[tuple[str, str]] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append((record.name, record.getMessage()))
    logger.handlers.insert(0, handler)  # first: no handler of the project's has seen the record yet
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def assert_redacted(output: str, token: str) -> None:
    assert token not in output
    assert "Zelda" not in output and "Quist" not in output


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def test_runservers_request_log_and_djangos_not_found_lines_are_redacted(db, env, tmp_path, token):
    port = free_port()
    web = ChildProcess(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"], env, tmp_path / "web.log"
    )
    try:
        wait_until(lambda: web.assert_running() or answers(f"http://127.0.0.1:{port}/healthz"), 60, "runserver")
        visit(f"http://127.0.0.1:{port}", token)
        wait_until(lambda: "GET /staff/login/?" in web.output(), 10, "the last request's line")
    finally:
        web.stop()

    output = web.output()
    assert_redacted(output, token)
    assert '"GET /r/… HTTP/1.1" 404' in output  # runserver's own line (django.server)
    assert "Not Found: /r/…" in output  # django.request
    assert "/staff/patients/?q=…&page=2" in output
    assert "next=/staff/patients/%3Fq%3D…%26page%3D2" in output


def test_gunicorns_access_log_is_redacted_when_turned_on(db, env, tmp_path, token):
    web = WebProcess({**env, "GUNICORN_CMD_ARGS": "--access-logfile -"}, tmp_path / "web.log")
    try:
        wait_until(lambda: web.assert_running() or answers(f"{web.url}/healthz"), 60, "gunicorn")
        visit(web.url, token)
        wait_until(lambda: "GET /staff/login/?" in web.output(), 10, "the last request's line")
    finally:
        web.stop()

    output = web.output()
    assert_redacted(output, token)
    assert '"GET /r/… HTTP/1.1" 404' in output
    assert '"GET /staff/patients/?q=…&page=2 HTTP/1.1" 302' in output


@pytest.mark.parametrize("kind", ["worker", "beat"])
def test_celery_worker_and_beat_redact_what_they_write(db, env, tmp_path, token, kind):
    text = f"GET /r/{token} and /staff/patients/?q={urllib.parse.quote_plus(NAME)}"
    command = [sys.executable, "-m", "celery", "-A", "tests.production.log_probe", kind, "--loglevel=info"]
    command += ["--pool=solo"] if kind == "worker" else ["--pidfile=", f"--schedule={tmp_path / 'schedule'}"]
    process = ChildProcess(command, {**env, "LOG_PROBE_TEXT": text}, tmp_path / f"{kind}.log")
    try:
        wait_until(lambda: process.assert_running() or process.output().count("probe ") >= 2, 60, f"{kind} probe")
    finally:
        process.stop()

    output = process.output()
    assert_redacted(output, token)
    assert output.count("probe GET /r/… and /staff/patients/?q=…") == 2, output


@pytest.mark.parametrize(
    ("logged", "written"),
    [
        (("Not Found: %s", "/r/{token}"), "Not Found: /r/…"),
        (
            ('"%s" %s %s', "GET /staff/book/?q=Zelda+Quist HTTP/1.1", 200, 5),
            '"GET /staff/book/?q=… HTTP/1.1" 200 5',
        ),
        (("%(r)s", {"r": "GET /admin/sessions/patient/?q=Zelda&o=1"}), "GET /admin/sessions/patient/?q=…&o=1"),
        (("login next=%s", "/staff/patients/%3Fq%3DZelda%2BQuist"), "login next=/staff/patients/%3Fq%3D…"),
        (("%s", "/api/patients/?phone=%2B16025550100&email=zq%40example.com"), "/api/patients/?phone=…&email=…"),
        (("query string %s %s", "q=Zelda"), "query string %s %s"),  # arguments that do not fit: the format alone
    ],
)
def test_any_handler_gets_records_already_redacted(token, logged, written):
    logger = logging.getLogger("tests.production.someone_elses")
    with lines_written(logger) as lines:
        logger.warning(*[a.format(token=token) if isinstance(a, str) else a for a in logged])

    assert lines == [("tests.production.someone_elses", written)]


def test_redact_keeps_what_is_not_a_patients():
    line = "request method=GET path=/staff/board/3/?date=2026-03-09&clinic=2 status=200 user=7 quota=5"

    assert redact(line) == line


def test_djangos_own_loggers_never_write_a_patient_link_token(db, token):
    client = Client(enforce_csrf_checks=True)
    with lines_written(logging.getLogger()) as lines:
        client.post(f"/r/{token}", {"action": "confirm"})  # no CSRF token: django.security.csrf logs a 403
        client.get(f"/r/{token}/nothing-here")  # django.request: Not Found

    assert {name for name, line in lines} >= {"django.security.csrf", "django.request", "scheduler.requests"}
    assert any("/r/…" in line for name, line in lines)
    assert not any(token in line for name, line in lines)
