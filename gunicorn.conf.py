"""gunicorn settings for the web service (docker-compose.yml runs `gunicorn -c gunicorn.conf.py`)."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
# One thread per process (gunicorn's sync worker): a request here is mostly Python work, and threads
# of one process take turns on its interpreter lock, a thread back from the database waiting out
# another's turn. Measured on the patient link page with 2 cores (bench/load.py's gunicorn with
# LOAD_GUNICORN_WORKERS/THREADS): 2 processes × 2 threads answered 180 requests/s, 2 × 1 about
# 570; gthread with one thread matched that rate with a p99 five times worse. A sync worker is
# held by a slow client for the whole request: run it behind a proxy that buffers requests and
# answers (nginx, a cloud load balancer), as the TLS in front of it already requires.
threads = int(os.environ.get("GUNICORN_THREADS", 1))
timeout = 30
graceful_timeout = 20
keepalive = 5
# Our middleware logs each request; gunicorn's access log would only repeat it. Turned on
# (--access-logfile), its lines lose link tokens and patient searches as every log record does
# (scheduler/logs.py).
accesslog = None
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def child_exit(server, worker) -> None:
    """With PROMETHEUS_MULTIPROC_DIR (docker-compose.yml), drop an exited worker's live gauges from
    the folder /metrics sums; its counters stay, so that a restart takes no count back."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        from scheduler.metric_files import metric_files_process_dead

        metric_files_process_dead(pid=worker.pid, folder=folder)
