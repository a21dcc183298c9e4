"""Timing with time.perf_counter: each call prepared ahead, so only the code under test is timed."""

import cProfile
import io
import math
import pstats
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# A call returns a label for its outcome ("booked", "refused:chair_overlap"): outcomes that take
# different paths through the code are reported as separate rows.
Call = Callable[[], str]
# Sets up one call, untimed (a new patient, a session to move), and returns it.
Prepare = Callable[[], Call]


@dataclass(frozen=True)
class Options:
    iterations: int
    warmup: int
    seed: int
    profile: bool


@dataclass(frozen=True)
class Target:
    median_ms: float
    p95_ms: float | None = None
    # How the target reads when it is derived from another row ("≤ 1.5 × the 10k table's").
    wording: str | None = None

    def describe(self) -> str:
        if self.wording:
            return self.wording
        text = f"median ≤ {self.median_ms:g} ms"
        return text if self.p95_ms is None else f"{text}, p95 ≤ {self.p95_ms:g} ms"

    def met_by(self, median: float, p95: float) -> bool:
        return median <= self.median_ms and (self.p95_ms is None or p95 <= self.p95_ms)


@dataclass(frozen=True)
class Throughput:
    """A target for a whole run of `items` (texts, say): at least `per_second` of them a second."""

    items: int
    per_second: float
    unit: str

    @property
    def limit_ms(self) -> float:
        return self.items / self.per_second * 1000

    def describe(self) -> str:
        return f"≥ {self.per_second:g} {self.unit}/s: {self.items:,} in ≤ {self.limit_ms:,.0f} ms"

    def met_by(self, median: float, p95: float) -> bool:
        return median <= self.limit_ms


@dataclass
class Row:
    name: str
    samples_ms: list[float]
    target: Target | Throughput | None = None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p95_ms(self) -> float:
        # Nearest rank: the smallest sample that at least 95% of the samples do not exceed.
        ordered = sorted(self.samples_ms)
        return ordered[math.ceil(0.95 * len(ordered)) - 1]

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else self.target.met_by(self.median_ms, self.p95_ms)


@dataclass
class Group:
    """One section of the report: a title, what it measures, its rows and notes."""

    title: str
    description: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # cProfile listings, printed when --profile is given; never written to the docs.
    profiles: dict[str, str] = field(default_factory=dict)


def time_calls(prepare: Prepare, *, count: int, warmup: int) -> dict[str, list[float]]:
    """Milliseconds of each of `count` calls, by outcome label, after `warmup` untimed calls."""
    for _ in range(warmup):
        prepare()()
    samples: dict[str, list[float]] = {}
    for _ in range(count):
        call = prepare()
        began = time.perf_counter()
        outcome = call()
        elapsed = time.perf_counter() - began
        samples.setdefault(outcome, []).append(elapsed * 1000)
    return samples


def profile_calls(prepare: Prepare, *, count: int, lines: int = 30) -> str:
    """Where `count` calls spend their time (their preparation left out), by own and cumulative time."""
    profiler = cProfile.Profile()
    for _ in range(count):
        call = prepare()
        profiler.enable()
        call()
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(lines)
    stats.sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


def captured_queries(prepare: Prepare) -> list[str]:
    """The SQL of the queries one call makes."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    call = prepare()
    with CaptureQueriesContext(connection) as captured:
        call()
    return [query["sql"] for query in captured.captured_queries]
