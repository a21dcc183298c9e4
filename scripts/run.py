"""`make run`: migrate, seed the demo clinic, then run web, Celery worker and beat as real processes.

Without DATABASE_URL and REDIS_URL it uses SQLite and kombu's filesystem broker, so a fresh
machine needs nothing but Python; with them it uses PostgreSQL and Redis, as production does.
Each child runs in a process group of its own: Ctrl-C reaches this script only, which then
stops every child and anything it started, so nothing is left holding the port or the queue.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_SECONDS = 60.0
# A worker finishes the task in hand on SIGTERM; one still busy after this is killed.
STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Child:
    name: str
    process: subprocess.Popen[bytes]


def main() -> int:
    port = int(os.environ.get("PORT", "8000"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler.settings.dev")
    # The children's logs then reach the terminal as they are written, in order.
    os.environ["PYTHONUNBUFFERED"] = "1"
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_folder()
    try:
        username, password = _prepare()
    except KeyboardInterrupt:
        return 130
    received = _trap_stop_signals()
    children = _start(port)
    code = _supervise(children, port, username, password, received)
    _stop(children, received[0] if received else signal.SIGTERM)
    return code


def _prepare() -> tuple[str, str]:
    """Migrate and seed here, before any child opens the database; returns the demo login."""
    # Run as scripts/run.py, so the project root is not on the path yet.
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    call_command("migrate", interactive=False)
    call_command("seed_demo")
    # SQLite: no connection of this process may hold the file while the children use it.
    connections.close_all()
    from sessions.demo import DEMO_PASSWORD, DEMO_USERNAME

    return DEMO_USERNAME, DEMO_PASSWORD


def _metrics_folder() -> str:
    """Where web, worker and beat count for /metrics, which sums their files: emptied, as an
    earlier run's counts are not this one's."""
    folder = ROOT / ".run" / "metrics"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return str(folder)


def _trap_stop_signals() -> list[int]:
    """Record SIGINT/SIGTERM instead of dying, so the loop can stop the children first."""
    received: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, note)
    return received


def _start(port: int) -> list[Child]:
    celery = [sys.executable, "-m", "celery", "-A", "scheduler"]
    commands = {
        "web": [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        # One process is plenty for a demo, and solo keeps Ctrl-C simple: no pool children.
        "worker": [*celery, "worker", "--pool=solo", "--loglevel=info"],
        "beat": [*celery, "beat", "--loglevel=info"],
    }
    children = []
    for name, command in commands.items():
        process = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
        print(f"run: started {name} (pid {process.pid})", flush=True)
        children.append(Child(name, process))
    return children


def _supervise(children: list[Child], port: int, username: str, password: str, received: list[int]) -> int:
    """Wait for a stop signal (0) or a child's death (non-zero); announce the URL once the web answers."""
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    announced = False
    while not received:
        for child in children:
            if child.process.poll() is not None:
                _say(f"{child.name} exited with status {child.process.returncode}; stopping the others")
                return 1
        if not announced and _answers(url):
            _announce(url, username, password)
            announced = True
        elif not announced and time.monotonic() > deadline:
            _say(f"the web did not answer at {url} within {READY_TIMEOUT_SECONDS:.0f} s; stopping")
            return 1
        time.sleep(POLL_SECONDS)
    return 0


def _answers(url: str) -> bool:
    # Any HTTP status counts: the question is only whether the server is up.
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _announce(url: str, username: str, password: str) -> None:
    rule = "=" * 64
    print(
        "\n".join(
            [
                rule,
                f"  Web:    {url}",
                f"  Staff:  {url}staff/  (day board, booking, inbox, outbox of texts)",
                f"  Admin:  {url}admin/",
                f"  API:    {url}api/schema/",
                f"  Metrics: {url}metrics  (Prometheus format)",
                f"  Login:  {username} / {password}",
                "  Web, worker and beat are running. Ctrl-C stops them all.",
                rule,
            ]
        ),
        flush=True,
    )


def _stop(children: list[Child], signum: int) -> None:
    for child in children:
        _signal_group(child, signum)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        try:
            child.process.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            _say(f"{child.name} did not stop within {STOP_GRACE_SECONDS:.0f} s; killing it")
        # Also takes down anything the child started that outlived it.
        _signal_group(child, signal.SIGKILL)
        child.process.wait()
    _say("stopped web, worker and beat")


def _signal_group(child: Child, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.process.pid, signum)


def _say(message: str) -> None:
    print(f"run: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
