"""Fixed-window counters shared by every web process: in Redis when REDIS_URL is set, else in
Django's cache (one process's memory, for development).

A window is one key per counter and window number. Counting is atomic (`INCR`) and the window's
expiry is set only by the hit that opens it, so two processes never lose a hit between them. In
Redis a hit, its expiry and a look at a second counter travel in one round trip: the patient link
page pays for its limits on every request.
"""

import functools
import logging
import time

import redis
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)


def rate_hit(name: str, *, limit: int) -> bool:
    """Count one hit on `name`; True while the window has had no more than `limit` hits."""
    return rate_hit_and_peek(name, limit=limit)[0]


def rate_hit_and_peek(name: str, *, limit: int, peek: str = "", peek_limit: int = 0) -> tuple[bool, bool]:
    """Count one hit on `name` and look at the counter `peek` without counting: (`name` still
    within `limit`, `peek` over `peek_limit`)."""
    key, window = _key(name)
    peek_key = _key(peek)[0] if peek else ""
    client = _redis()
    if client is None:
        count = _cache_hit(key, window)
        peeked = (cache.get(peek_key) or 0) if peek else 0
    else:
        try:
            with client.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, window + 1, nx=True)
                if peek:
                    pipe.get(peek_key)
                answers = pipe.execute()
        except redis.RedisError as exc:
            # Open rather than shut: patients keep their page while Redis is away, and a 72-bit
            # token is not guessed in the minutes it takes to come back.
            logger.warning("rate limit unavailable: %s", exc.__class__.__name__)
            return True, False
        count, peeked = answers[0], int(answers[2] or 0) if peek else 0
    return count <= limit, peeked > peek_limit


def _key(name: str) -> tuple[str, int]:
    window = settings.LINK_RATE_WINDOW_SECONDS
    return f"rate:{name}:{int(time.time() // window)}", window


@functools.cache
def _redis() -> redis.Redis | None:
    return redis.Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None


def _cache_hit(key: str, window: int) -> int:
    try:
        return cache.incr(key)
    except ValueError:  # no such window yet: open it, unless another process just did
        return 1 if cache.add(key, 1, timeout=window + 1) else cache.incr(key)
