"""What a run prints and what it writes to docs/benchmarks.md: the machine, then one section
per benchmark group, regenerated whole at each run."""

import platform
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import django

from .database import server_version
from .measure import Group, Row

VERDICT = {True: "pass", False: "FAIL", None: "—"}


def table(rows: list[Row]) -> str:
    lines = ["| benchmark | median ms | p95 ms | target | pass/fail |", "|---|---:|---:|---|---|"]
    for row in rows:
        target = row.target.describe() if row.target else "—"
        if not row.samples_ms:
            lines.append(f"| {row.name} | — | — | {target} | FAIL (no sample) |")
            continue
        lines.append(f"| {row.name} | {row.median_ms:.1f} | {row.p95_ms:.1f} | {target} | {VERDICT[row.passed]} |")
    return "\n".join(lines)


def summary(groups: list[Group]) -> str:
    """One table of every benchmark that has a target, across the groups."""
    return table([Row(f"{g.title}: {r.name}", r.samples_ms, r.target) for g in groups for r in g.rows if r.target])


def machine(database_host: str) -> list[tuple[str, str]]:
    return [
        ("CPUs (nproc)", _output(["nproc"])),
        ("CPU model", _lscpu_model()),
        ("Memory", _memory()),
        ("PostgreSQL", f"{server_version()} at {database_host}"),
        ("Python", platform.python_version()),
        ("Django", django.get_version()),
        ("Code", _code_version()),
        ("Date", f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"),
        ("CPU probe (a fixed Python workload, best of 5)", f"{_cpu_probe_ms():.1f} ms"),
    ]


def document(groups: list[Group], facts: list[tuple[str, str]], run_seconds: float) -> str:
    parts = [
        "# Benchmarks",
        "Measured by `make bench` (`bench/run.py`), which rewrites this file; edit the benchmarks, not "
        "this page. Times are wall-clock milliseconds per call (`time.perf_counter`), measured after "
        "warm-up calls, from Python through Django to PostgreSQL and back, with DEBUG off. p95 is the "
        "nearest-rank 95th percentile. The machine is a shared virtual one whose speed drifts between "
        "runs: on 2026-11-25 one commit measured a booking's median at 16 and at 24 ms within the hour, "
        "and the CPU model itself changed between sessions (Intel Xeon, then AMD EPYC). Read one run's "
        "numbers against each other; the CPU probe below is a rough gauge of plain Python speed only.",
        "## Machine",
        "| | |\n|---|---|\n" + "\n".join(f"| {name} | {value} |" for name, value in facts),
        f"The last run took {run_seconds:.0f} s, building its data included.",
        "## Every target",
        summary(groups),
        "## How to run",
        "```sh\n"
        "make bench                                     # postgres://postgres@127.0.0.1:5432/bench\n"
        "BENCH_DATABASE_URL=postgres://u:p@host:5432/bench make bench\n"
        ".venv/bin/python bench/run.py --iterations 500 --profile --no-docs\n"
        ".venv/bin/python bench/run.py --group booking   # one group; this page is left as it is\n"
        "```",
        "The database comes from `BENCH_DATABASE_URL`, else `DATABASE_URL`, else the local default "
        "above; it is created when missing, migrated, and its booking tables (and the reminder rows that "
        "hang on them) are emptied at every run, so its name must contain `bench`. A booking's wake-up of "
        "the reminder tick, one broker publish after commit, is off unless `REMINDER_KICK_ON_BOOKING=true`: "
        "no worker drains the bench's queue. `--profile` prints where each benchmark spends its time "
        "(cProfile); `--check` exits 1 when a target is missed; `--group` (repeatable) runs only the groups "
        "named, and then leaves this page alone. To add a benchmark group, write a "
        "function that returns a `bench.measure.Group` and list it in `bench/run.py`. The Reminders group "
        "also needs `redis-server` on the PATH: it starts a Redis of its own and real `celery worker` "
        "processes, and never touches the Redis of `REDIS_URL`.",
    ]
    for group in groups:
        parts += [f"## {group.title}", group.description, table(group.rows)]
        parts.append("\n".join(f"- {note}" for note in group.notes))
    return "\n\n".join(part for part in parts if part) + "\n"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _output(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _lscpu_model() -> str:
    for line in _output(["lscpu"]).splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "Model name":
            return value.strip()
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        with open("/proc/meminfo") as meminfo:
            kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    except (OSError, StopIteration):
        return "unknown"
    return f"{kib / 2**20:.1f} GiB"


def _cpu_probe_ms() -> float:
    """Milliseconds for a fixed piece of plain Python: a rough gauge of how fast the machine ran
    it during this run (the database and the other processes are not in it)."""

    def work() -> None:
        table = {n: str(n) for n in range(200_000)}
        sorted(table.values())

    times = []
    for _ in range(5):
        began = time.perf_counter()
        work()
        times.append((time.perf_counter() - began) * 1000)
    return min(times)


def _code_version() -> str:
    root = Path(__file__).resolve().parent.parent
    commit = _output(["git", "-C", str(root), "rev-parse", "--short", "HEAD"])
    dirty = _output(["git", "-C", str(root), "status", "--porcelain"])
    return f"git {commit}" + (" with uncommitted changes" if dirty and dirty != "unknown" else "")
