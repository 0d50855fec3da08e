"""Per-user and per-IP rate limits on the ``limits`` library (memory by default, Redis by setting)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string


class RateLimited(Exception):
    """Raised when a key is over its limit; ``retry_after`` is in whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limit exceeded, retry after {retry_after} s")
        self.retry_after = retry_after


class RateLimiter:
    """Fixed-window limits keyed by ``user:<id>`` or ``ip:<address>``.

    Example:
        >>> limiter = RateLimiter("memory://", per_user="2/minute", per_ip="5/second")
        >>> limiter.per_user.amount
        2
    """

    def __init__(self, storage_uri: str, *, per_user: str, per_ip: str) -> None:
        uri = storage_uri if storage_uri.startswith("async+") else f"async+{storage_uri}"
        options = {"implementation": "redispy"} if "redis" in uri else {}
        self.storage = storage_from_string(uri, **options)
        self.limiter = FixedWindowRateLimiter(self.storage)
        self.per_user: RateLimitItem = parse(per_user)
        self.per_ip: RateLimitItem = parse(per_ip)

    async def _hit(self, item: RateLimitItem, key: str) -> None:
        if not await self.limiter.hit(item, key):
            stats = await self.limiter.get_window_stats(item, key)
            raise RateLimited(max(1, math.ceil(stats.reset_time - time.time())))

    async def hit_user(self, user_id: int) -> None:
        """Count one request of a user; raises :class:`RateLimited` over the limit."""
        await self._hit(self.per_user, f"user:{user_id}")

    async def hit_ip(self, address: str) -> None:
        """Count one request from an address; raises :class:`RateLimited` over the limit."""
        await self._hit(self.per_ip, f"ip:{address}")

    async def ping(self) -> bool:
        """Whether the limit storage answers."""
        try:
            return bool(await self.storage.check())
        except Exception:
            return False
