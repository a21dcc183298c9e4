"""Metrics of many processes in one folder (PROMETHEUS_MULTIPROC_DIR), summed by /metrics.

prometheus_client keeps each process's counters in files named after its pid. Containers count
pids from 1 each, so web, worker and beat sharing one volume (docker-compose.yml) would have two
processes write one file, which corrupts it: here a process is named by its host and its pid.
The settings install this, as every process loads them before it creates its first metric:
gunicorn's workers, the Celery worker (whose children inherit it) and beat.
"""

import os
import socket

from prometheus_client import values
from prometheus_client.multiprocess import mark_process_dead

# prometheus_client splits its file names at "_" to read them back.
_HOST = socket.gethostname().replace("_", "-")


def process_name(pid: int | None = None) -> str:
    """This process's name in the folder's file names, or that of another process on this host."""
    return f"{_HOST}-{os.getpid() if pid is None else pid}"


def metric_files_start(*, folder: str) -> bool:
    """Have every metric this process creates from now on count in `folder`; True when it does."""
    if not folder:
        return False
    os.makedirs(folder, exist_ok=True)
    # prometheus_client finds the folder in the environment as it opens each file.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    values.ValueClass = values.MultiProcessValue(process_name)
    return True


def metric_files_process_dead(*, pid: int, folder: str) -> None:
    """gunicorn's child_exit: drop the live gauges of a worker that exited (its counters stay, still
    summed, so that a restart does not take a count back)."""
    mark_process_dead(process_name(pid), folder)
