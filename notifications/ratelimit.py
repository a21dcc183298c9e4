"""Fixed-window counters in Django's cache (Redis in production), shared by every web process.

A window is one cache key per counter and window number; `add` starts it at zero with an expiry
and `incr` counts atomically, so two processes never lose a hit between them.
"""

import time

from django.conf import settings
from django.core.cache import cache


def _key(name: str) -> tuple[str, int]:
    window = settings.LINK_RATE_WINDOW_SECONDS
    return f"rate:{name}:{int(time.time() // window)}", window


def rate_hit(name: str, *, limit: int) -> bool:
    """Count one hit on `name`; True while the window has had no more than `limit` hits."""
    key, window = _key(name)
    cache.add(key, 0, timeout=window + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # the window expired between add and incr: this hit opens the next one
        cache.add(key, 1, timeout=window + 1)
        count = 1
    return count <= limit


def rate_exceeded(name: str, *, limit: int) -> bool:
    """Whether `name` has had more than `limit` hits this window, without counting one."""
    key, _ = _key(name)
    return (cache.get(key) or 0) > limit
