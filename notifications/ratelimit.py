"""Fixed-window counters in Django's cache (Redis in production), shared by every web process.

A window is one cache key per counter and window number; `incr` counts atomically and `add`
opens a window with its expiry, so two processes never lose a hit between them.
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
    # Counting first is one round trip while the window is open; only its first hit also adds.
    try:
        count = cache.incr(key)
    except ValueError:  # no such window yet: open it, unless another process just did
        count = 1 if cache.add(key, 1, timeout=window + 1) else cache.incr(key)
    return count <= limit


def rate_exceeded(name: str, *, limit: int) -> bool:
    """Whether `name` has had more than `limit` hits this window, without counting one."""
    key, _ = _key(name)
    return (cache.get(key) or 0) > limit
