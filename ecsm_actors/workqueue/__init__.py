"""The controller workqueue (client-go's ``workqueue``) and its rate limiters.

Runs inside every controller process. Parts: ``queue`` (:class:`WorkQueue`: dedup,
processing/dirty sets, delayed adds, two priority levels, shutdown and drain) and
``rate_limiters`` (per-key exponential backoff, the token bucket shared by every key,
their maximum: the retry delay of :meth:`WorkQueue.add_rate_limited`).
"""

from __future__ import annotations

from ecsm_actors.workqueue.queue import Priority, WorkQueue
from ecsm_actors.workqueue.rate_limiters import (
    BucketRateLimiter,
    ItemExponentialBackoff,
    MaxOfRateLimiter,
    RateLimiter,
    controller_rate_limiter,
)

__all__ = [
    "BucketRateLimiter",
    "ItemExponentialBackoff",
    "MaxOfRateLimiter",
    "Priority",
    "RateLimiter",
    "WorkQueue",
    "controller_rate_limiter",
]
