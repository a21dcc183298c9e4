"""`make run` on a copy of the working tree, as on a fresh machine: SQLite, the filesystem broker,
real web, worker and beat processes, and nothing left running once it stops."""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The venv running this test: `make run VENV=...` reuses it instead of installing a new one.
VENV = Path(sys.prefix)
STARTUP_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 30.0
# Left out of the copy: local state of this checkout, and anything that would point the copy
# at a database, broker or settings other than the defaults a new machine gets.
NOT_COPIED = {".venv", ".venv-runtime", ".git", "db.sqlite3", ".broker", ".env", ".run", "staticfiles"}
CACHES = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
ENV_DROPPED = {
    "DATABASE_URL",
    "REDIS_URL",
    "DJANGO_SETTINGS_MODULE",
    "CELERY_FILESYSTEM_BROKER_DIR",
    "MAKEFLAGS",
    "MAKELEVEL",
    "MFLAGS",
}

pytestmark = pytest.mark.e2e


class Output:
    """Collects the merged output of `make run` on a thread, so a full pipe never blocks it."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = STARTUP_TIMEOUT_SECONDS) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := re.search(pattern, self.text):
                return found
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                break
            time.sleep(0.1)
        pytest.fail(f"no {pattern!r} in the output of make run:\n{self.text[-6000:]}")

    def child_pids(self) -> dict[str, int]:
        return {name: int(pid) for name, pid in re.findall(r"run: started (\w+) \(pid (\d+)\)", self.text)}


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[Output]:
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=_not_copied)
    env = {name: value for name, value in os.environ.items() if name not in ENV_DROPPED}
    env["PORT"] = str(_free_port())
    # A group of its own, like a terminal's foreground job: the test can Ctrl-C make and run.py.
    process = subprocess.Popen(
        ["make", "run", f"VENV={VENV}"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output(process)
    try:
        yield output
    finally:
        _kill_groups([process.pid, *output.child_pids().values()])
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


def test_it_serves_the_demo_with_worker_and_beat_and_stops_everything_on_ctrl_c(make_run: Output) -> None:
    url = make_run.wait_for(r"Web:\s+(http://127\.0\.0\.1:\d+/)").group(1)
    assert re.search(r"Login:\s+demo / \S+", make_run.text)
    for path in ("", "api/schema/", "admin/login/", "metrics"):
        assert _status(url + path) == 200, path
    make_run.wait_for(r"celery@\S+ ready\.")
    make_run.wait_for(r"beat: Starting\.\.\.")
    pids = make_run.child_pids()
    assert sorted(pids) == ["beat", "web", "worker"]
    # Each child leads its own group, so its pid is its group's id.
    assert set(pids.values()) <= set(_processes_in_groups(pids.values()))

    os.killpg(make_run.process.pid, signal.SIGINT)
    make_run.process.wait(timeout=STOP_TIMEOUT_SECONDS)

    assert _processes_in_groups([make_run.process.pid, *pids.values()]) == []
    make_run.wait_for(r"run: stopped web, worker and beat")


def test_it_stops_the_others_and_fails_when_a_child_dies(make_run: Output) -> None:
    make_run.wait_for(r"Web:\s+http://")
    pids = make_run.child_pids()

    os.kill(pids["worker"], signal.SIGKILL)
    make_run.process.wait(timeout=STOP_TIMEOUT_SECONDS)

    assert make_run.process.returncode != 0
    make_run.wait_for(r"run: worker exited with status -9")
    assert _processes_in_groups(pids.values()) == []


def _not_copied(folder: str, names: list[str]) -> set[str]:
    top_level = NOT_COPIED if Path(folder) == ROOT else set()
    return {name for name in names if name in top_level or name in CACHES}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _processes_in_groups(groups: Iterable[int]) -> list[int]:
    """Live (not zombie) processes whose process group is one of `groups`, from /proc."""
    wanted = set(groups)
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        state, group = fields[0], int(fields[2])
        if group in wanted and state != "Z":
            found.append(int(stat.parent.name))
    return found


def _kill_groups(groups: list[int]) -> None:
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
