"""wrk, a load generator written in C (Debian's `wrk`), for GET loads: it costs the cores a
fraction of what a Python client would, so the server gets the machine it is measured on.

Given several paths, each connection walks through them in turn. A Lua `done` hook prints the
run's numbers as one JSON line, with the latency distribution as percentiles 0.5, 1.5, … 99.5:
a hundred evenly spaced quantiles, from which the report's median and p95 come out as they would
from every sample.
"""

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_PATHS = """
paths = {%s}
n = 0
request = function()
  n = n %% #paths + 1
  return wrk.format(nil, paths[n])
end
"""
_REPORT = """
done = function(summary, latency, requests)
  local quantiles = {}
  for n = 0, 99 do quantiles[#quantiles + 1] = latency:percentile(n + 0.5) / 1000 end
  local e = summary.errors
  io.write(string.format(
    '\\nWRK {"requests": %d, "seconds": %f, "errors": {"connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d}, "p99_ms": %f, "max_ms": %f, "quantiles_ms": [%s]}\\n',
    summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(99) / 1000, latency.max / 1000, table.concat(quantiles, ", ")))
end
"""


class WrkMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class WrkOutcome:
    requests: int
    seconds: float
    errors: dict[str, int]
    p99_ms: float
    max_ms: float
    quantiles_ms: list[float]

    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_run(url: str, *, clients: int, seconds: float, threads: int = 2, paths: list[str] = ()) -> WrkOutcome:
    """`clients` connections GETting `url` (or each of `paths` on its host in turn) back to back for
    `seconds`, over `threads` threads. A non-2xx/3xx answer counts in errors["status"]."""
    program = shutil.which("wrk")
    if program is None:
        raise WrkMissing("wrk is not installed: `make bench` installs it (apt-get install wrk).")
    with tempfile.TemporaryDirectory(prefix="wrk-") as folder:
        script = Path(folder) / "report.lua"
        walk = _PATHS % ", ".join(json.dumps(path) for path in paths) if paths else ""
        script.write_text(walk + _REPORT)
        done = subprocess.run(
            [program, f"-t{threads}", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script), url],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        )
    line = next(line for line in done.stdout.splitlines() if line.startswith("WRK "))
    return WrkOutcome(**json.loads(line.removeprefix("WRK ")))
