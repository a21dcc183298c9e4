"""Development: `make run` and the test suite. Never used in production."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "dev-only-not-secret")
os.environ.setdefault("DJANGO_DEBUG", "true")

from .base import *  # noqa: E402,F403

# /metrics without METRICS_TOKEN answers requests from this machine (`make run`, a local Prometheus).
METRICS_LOOPBACK_OPEN = True
