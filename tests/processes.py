"""Real processes for end-to-end tests: a Redis server of the test's own, Celery workers and
beats and gunicorn on the test database. Each uses a free port or a fresh folder and is always
stopped."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_database_url() -> str:
    """The URL of the database this test runs on (pytest-django's test_… database)."""
    db = connection.settings_dict
    assert connection.vendor == "postgresql", "real worker processes need the PostgreSQL test database"
    user = db["USER"] or "postgres"
    return f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class RedisServer:
    """A redis-server of its own, so a test may stop and restart it without touching anyone else's."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self._answers, 10, "redis-server to accept connections")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class ChildProcess:
    """A child process in its own process group, its output in a log file."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL: no chance to finish the task in hand or to hand anything back."""
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(timeout=10)
        self._signal(signal.SIGKILL)  # anything its pool left behind

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def assert_running(self) -> None:
        """Fails at once, with the log, on a process that has exited: a crash at start-up then
        reads as its traceback instead of a timeout on whatever it should have done."""
        code = self.process.poll()
        assert code is None, f"{' '.join(self.process.args)} exited with status {code}:\n{self.output()[-6000:]}"

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass


class CeleryProcess(ChildProcess):
    """`celery worker` or `celery beat`; `python` is the interpreter (another venv's, to run on its packages)."""

    def __init__(self, kind: str, env: dict[str, str], log: Path, *extra: str, python: str = sys.executable) -> None:
        command = [python, "-m", "celery", "-A", "scheduler", kind, "--loglevel=info", *extra]
        if kind == "beat":
            command.append("--pidfile=")  # two beats may share a folder: no pid file to fight over
        super().__init__(command, env, log)


class WebProcess(ChildProcess):
    """gunicorn with the project's gunicorn.conf.py, on a free loopback port."""

    def __init__(self, env: dict[str, str], log: Path, *, python: str = sys.executable) -> None:
        self.port = free_port()
        command = [python, "-m", "gunicorn", "-c", "gunicorn.conf.py", "scheduler.wsgi"]
        super().__init__(command, {**env, "GUNICORN_BIND": f"127.0.0.1:{self.port}"}, log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def celery_env(*, redis_url: str, twilio, smtp, tick_seconds: float = 1.0, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "PYTEST", "DJANGO_SETTINGS"))}
    env.update(
        DJANGO_SETTINGS_MODULE="scheduler.settings.dev",
        DATABASE_URL=test_database_url(),
        DB_CONN_MAX_AGE="0",
        REDIS_URL=redis_url,
        PUBLIC_BASE_URL="https://go.example.com",
        TWILIO_ACCOUNT_SID=twilio.account_sid,
        TWILIO_AUTH_TOKEN=twilio.auth_token,
        TWILIO_FROM_NUMBER="+16025550199",
        TWILIO_API_BASE_URL=twilio.base_url,
        TWILIO_TIMEOUT_SECONDS="3",
        EMAIL_URL=f"smtp://{smtp.host}:{smtp.port}",
        REMINDER_TICK_SECONDS=str(tick_seconds),
        REMINDER_KICK_ON_BOOKING="false",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env
