"""gunicorn settings for the web service (docker-compose.yml runs `gunicorn -c gunicorn.conf.py`)."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 2))
timeout = 30
graceful_timeout = 20
keepalive = 5
# Our middleware logs each request with patient link tokens cut out; gunicorn's access log would
# write the raw path, token and all.
accesslog = None
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
