"""CPU time from /proc (Linux): what the worker processes used, and how busy the host was.

A throughput figure on a small host means little without them: it tells the cost of a text
apart from time lost to whatever else ran on the machine meanwhile.
"""

import os
from collections.abc import Collection
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSnapshot:
    group_seconds: float
    own_seconds: float
    host_busy_seconds: float
    host_seconds: float

    def since(self, earlier: "CpuSnapshot") -> "CpuSnapshot":
        return CpuSnapshot(
            self.group_seconds - earlier.group_seconds,
            self.own_seconds - earlier.own_seconds,
            self.host_busy_seconds - earlier.host_busy_seconds,
            self.host_seconds - earlier.host_seconds,
        )

    @property
    def host_busy(self) -> float:
        return self.host_busy_seconds / self.host_seconds if self.host_seconds else 0.0


def cpu_snapshot(groups: Collection[int]) -> CpuSnapshot:
    """CPU seconds of the process groups `groups` (workers and their pools), of this process, and of
    the host."""
    busy, total = _host_seconds()
    own = os.times()
    return CpuSnapshot(_groups_seconds(groups), own.user + own.system, busy, total)


def _groups_seconds(groups: Collection[int]) -> float:
    used = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                # The command name may hold spaces and parentheses: the fields follow the last ")".
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[2]) in groups:
            used += int(fields[11]) + int(fields[12])
    return used / _TICKS


def _host_seconds() -> tuple[float, float]:
    """Busy and total CPU seconds of all cores since boot (idle and iowait are not busy)."""
    with open("/proc/stat") as stat:
        ticks = [int(n) for n in stat.readline().split()[1:]]
    total = sum(ticks[:8])
    return (total - ticks[3] - ticks[4]) / _TICKS, total / _TICKS
