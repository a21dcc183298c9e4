"""`make bench`: benchmarks of the booking core and the reminder pipeline on PostgreSQL.

Sets Django up on the benchmark database (see bench/database.py), runs every group in
`groups()`, prints their tables and rewrites docs/benchmarks.md from them.
"""

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `python bench/run.py` puts bench/ on the path, not the project.
sys.path.insert(0, str(ROOT))

from bench.database import BenchDatabaseError, database_create, database_url  # noqa: E402
from bench.measure import Group, Options  # noqa: E402

# The groups by the name `--group` takes, in the order of the report.
GROUP_NAMES = ("booking", "reminders", "pages", "reports", "load", "refill")


def groups(names: list[str] | None = None) -> list[Callable[[Options], Group]]:
    """The named benchmark groups (every one by default), in the order of the report. Imported
    here: they need Django set up."""
    from bench.booking import booking_benchmarks
    from bench.load import load_benchmarks
    from bench.pages import page_benchmarks
    from bench.refill import refill_benchmarks
    from bench.reminders import reminder_benchmarks
    from bench.reports import report_benchmarks

    every = [
        booking_benchmarks,
        reminder_benchmarks,
        page_benchmarks,
        report_benchmarks,
        load_benchmarks,
        refill_benchmarks,
    ]
    return [group for name, group in zip(GROUP_NAMES, every, strict=True) if not names or name in names]


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    began = time.perf_counter()
    try:
        url = database_url(dict(os.environ))
    except BenchDatabaseError as exc:
        print(exc, file=sys.stderr)
        return 2
    _django_setup(url)

    from django.db import connection

    from bench import report
    from bench.database import database_prepare

    database_prepare()
    options = Options(
        iterations=arguments.iterations, warmup=arguments.warmup, seed=arguments.seed, profile=arguments.profile
    )
    results = []
    for benchmark in groups(arguments.group):
        group = benchmark(options)
        results.append(group)
        print(f"\n## {group.title}\n\n{report.table(group.rows)}\n")
        for note in group.notes:
            print(f"- {note}")
        for name, listing in group.profiles.items():
            print(f"\n### Profile: {name}\n{listing}")
    seconds = time.perf_counter() - began
    print(f"\n## Every target\n\n{report.summary(results)}\n")
    print(f"Run took {seconds:.1f} s.")
    # The page holds every group: a run of some of them leaves it as it is.
    if not arguments.no_docs and not arguments.group:
        facts = report.machine(f"{connection.settings_dict['HOST'] or 'local socket'}")
        report.write(ROOT / "docs" / "benchmarks.md", report.document(results, facts, seconds))
        print("Wrote docs/benchmarks.md.")
    missed = [row.name for group in results for row in group.rows if row.passed is False]
    return 1 if arguments.check and missed else 0


def _django_setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "scheduler.settings.dev"
    # DEBUG keeps every query's SQL in memory and times it: production runs without it.
    os.environ["DJANGO_DEBUG"] = "false"
    # A booking wakes the reminder tick through the broker after commit; no worker drains the
    # bench's queue, so by default it publishes nothing (REMINDER_KICK_ON_BOOKING=true to measure it).
    os.environ.setdefault("REMINDER_KICK_ON_BOOKING", "false")
    created = database_create(url)
    if created:
        print(f"Created the database {created}.")

    import django

    django.setup()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200, help="timed calls per benchmark (default 200)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls before them (default 5)")
    parser.add_argument("--seed", type=int, default=20260105, help="seed of the data set and of the draws")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile listing per benchmark")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument(
        "--group",
        action="append",
        choices=GROUP_NAMES,
        help="run only this group (repeatable); docs/benchmarks.md is then left as it is",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
