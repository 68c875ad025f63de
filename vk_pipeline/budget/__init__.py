"""The VK rate budget, in one place: the contract the client asks (`RateLimiter`), one acquire
loop (`core.Limiter`), and two backends: this process (`memory`) and Postgres (`postgres`), which
every run, sensor and command on every machine shares.

`vk_pipeline.budget.postgres` is imported by name where it is wired in (`vk_pipeline.resources`):
the VK client imports this package, and must not pull in storage with it.
"""

from vk_pipeline.budget.core import LATE_SECONDS, MAX_LATE_RETRIES, Limiter, RateLimiter
from vk_pipeline.budget.memory import RateBudget, SlidingWindowLimiter

__all__ = [
    "LATE_SECONDS",
    "MAX_LATE_RETRIES",
    "Limiter",
    "RateBudget",
    "RateLimiter",
    "SlidingWindowLimiter",
]
