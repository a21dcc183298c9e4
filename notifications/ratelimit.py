"""Fixed-window counters shared by every web process: in Redis when REDIS_URL is set, else in
Django's cache (one process's memory, for development).

A window is one key per counter and window number. Counting is atomic (`INCR`) and the window's
expiry is set only by the hit that opens it, so two processes never lose a hit between them. In
Redis a hit, its expiry and a look at a second counter travel in one round trip: the patient link
page pays for its limits on every request.

While Redis cannot be reached the limits are open rather than shut: patients keep their page, and
a 72-bit token is not guessed in the minutes an outage lasts. A short timeout keeps a hung Redis
from holding the page, and after a failure Redis is left alone for a few seconds, so an outage
costs neither a timeout per request nor a log line per request.
"""

import functools
import logging
import time

import redis
from django.conf import settings
from django.core.cache import cache
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

_TIMEOUT_SECONDS = 0.25
_PAUSE_AFTER_FAILURE_SECONDS = 5.0


def rate_hit(name: str, *, limit: int) -> bool:
    """Count one hit on `name`; True while the window has had no more than `limit` hits."""
    return rate_hit_and_peek(name, limit=limit)[0]


def rate_hit_and_peek(name: str, *, limit: int, peek: str = "", peek_limit: int = 0) -> tuple[bool, bool]:
    """Count one hit on `name` and look at the counter `peek` without counting: (`name` still
    within `limit`, `peek` over `peek_limit`)."""
    key, window = _key(name)
    peek_key = _key(peek)[0] if peek else ""
    counters = _redis_counters()
    if counters is None:
        count = _cache_hit(key, window)
        peeked = (cache.get(peek_key) or 0) if peek else 0
    else:
        answer = counters.hit(key, window, peek_key)
        if answer is None:
            return True, False
        count, peeked = answer
    return count <= limit, peeked > peek_limit


class _RedisCounters:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=_TIMEOUT_SECONDS, socket_timeout=_TIMEOUT_SECONDS, retry=Retry(NoBackoff(), 0)
        )
        self.paused_until = 0.0

    def hit(self, key: str, window: int, peek_key: str) -> tuple[int, int] | None:
        """The count of `key` after this hit and the value of `peek_key` (0 without one); None
        while Redis cannot answer."""
        if time.monotonic() < self.paused_until:
            return None
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, window + 1, nx=True)
                if peek_key:
                    pipe.get(peek_key)
                answers = pipe.execute()
        except redis.RedisError as exc:
            self.paused_until = time.monotonic() + _PAUSE_AFTER_FAILURE_SECONDS
            logger.warning("rate limits open for %.0f s: Redis %s", _PAUSE_AFTER_FAILURE_SECONDS, type(exc).__name__)
            return None
        return answers[0], int(answers[2] or 0) if peek_key else 0


@functools.cache
def _redis_counters() -> _RedisCounters | None:
    return _RedisCounters(settings.REDIS_URL) if settings.REDIS_URL else None


def _key(name: str) -> tuple[str, int]:
    window = settings.LINK_RATE_WINDOW_SECONDS
    return f"rate:{name}:{int(time.time() // window)}", window


def _cache_hit(key: str, window: int) -> int:
    try:
        return cache.incr(key)
    except ValueError:  # no such window yet: open it, unless another process just did
        return 1 if cache.add(key, 1, timeout=window + 1) else cache.incr(key)
