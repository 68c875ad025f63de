"""Request pacing for one VK token.

The limiter sits behind `RateLimiter` so that a later budget shared across processes (a row in
Postgres) can replace the in-memory one without touching the client.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol


class RateLimiter(Protocol):
    def acquire(self) -> None:
        """Block until one more request may be sent."""

    def penalize(self, seconds: float) -> None:
        """Hold every request back for `seconds` (VK said "too many requests")."""


class SlidingWindowLimiter:
    """At most `rate` sends in any window of `window + margin` seconds.

    VK counts requests per token in a 1 s window measured where they arrive, not where they are
    sent. A fixed margin absorbs the jitter between the two (vk-io and VK's Android SDK found
    1000/3 ms too tight and settled near 1100/3 ms). A sliding window, unlike even spacing,
    lets a request go as soon as the oldest of the last `rate` leaves the window, so slow responses
    do not leave the budget idle.
    """

    def __init__(
        self,
        rate: float,
        *,
        window: float = 1.0,
        margin: float = 0.06,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        # A fractional rate (0.5 rps) becomes 1 request per 2 s windows.
        self._slots = max(1, int(rate))
        self._span = (window * self._slots / rate) + margin
        self._sent: deque[float] = deque(maxlen=self._slots)
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                ready_at = self._blocked_until
                if len(self._sent) == self._slots:
                    ready_at = max(ready_at, self._sent[0] + self._span)
                if now >= ready_at:
                    self._sent.append(now)
                    return
            self._sleep(ready_at - now)

    def penalize(self, seconds: float) -> None:
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)
