"""Request pacing for a pool of VK tokens, and the daily quotas VK keeps per token and method.

The client asks a `RateLimiter` for a token before every request. Behind the protocol sits either
the in-process `SlidingWindowLimiter` here or a budget shared through Postgres (`vk_pipeline.budget`)
that every process on every machine holding the same token draws from.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class RateLimiter(Protocol):
    def acquire(self, keys: Sequence[str], methods: Collection[str] = ()) -> str | None:
        """Block until one of `keys` may send a request and return it: the key that can send
        soonest. Keys whose daily quota for one of `methods` is spent are skipped; None when
        that leaves no key."""

    def penalize(self, key: str, seconds: float) -> None:
        """Hold every request of `key` back for `seconds` (VK said "too many requests")."""

    def exhaust(self, key: str, method: str, seconds: float, reason: str) -> None:
        """`key` reached VK's quota for `method`: skip it for that method for `seconds`."""

    def quota_resets(self, keys: Sequence[str], method: str) -> float | None:
        """Seconds until the first of `keys` may call `method` again; None if one may now."""


# How late a reserved send may go out before its slot is given up (see `acquire`).
LATE_SECONDS = 0.03
MAX_LATE_RETRIES = 5


@dataclass
class _Key:
    sent: deque[float]
    blocked_until: float = 0.0
    quota_until: dict[str, float] = field(default_factory=dict)


class SlidingWindowLimiter:
    """At most `rate` sends per key in any window of `window + margin` seconds, in this process.

    VK counts requests per token in a 1 s window measured where they arrive, not where they are
    sent. A fixed margin absorbs the jitter between the two (vk-io and VK's Android SDK found
    1000/3 ms too tight and settled near 1100/3 ms). A sliding window, unlike even spacing, lets a
    request go as soon as the oldest of the last `rate` leaves the window, so slow responses do
    not leave the budget idle. Slots are reserved before sleeping, so threads waiting together
    are served in turn without polling.
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
        self._keys: dict[str, _Key] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def _key(self, key: str) -> _Key:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Key(deque(maxlen=self._slots))
        return state

    def _ready_at(self, state: _Key, now: float) -> float:
        ready = max(now, state.blocked_until)
        if len(state.sent) == self._slots:
            ready = max(ready, state.sent[0] + self._span)
        return ready

    def acquire(self, keys: Sequence[str], methods: Collection[str] = ()) -> str | None:
        for attempt in range(MAX_LATE_RETRIES + 1):
            reserved = self._reserve(keys, methods)
            if reserved is None:
                return None
            key, ready = reserved
            wait = ready - self._clock()
            if wait > 0:
                self._sleep(wait)
            # A slot used late lands next to the slots reserved after it: a thread held up past
            # its slot leaves it unused and takes a fresh one.
            if self._clock() - ready <= LATE_SECONDS or attempt == MAX_LATE_RETRIES:
                return key
        raise AssertionError("unreachable")

    def _reserve(self, keys: Sequence[str], methods: Collection[str]) -> tuple[str, float] | None:
        with self._lock:
            now = self._clock()
            best: tuple[float, float, str] | None = None
            for key in keys:
                state = self._key(key)
                if any(state.quota_until.get(m, 0.0) > now for m in methods):
                    continue
                # Soonest first; among keys ready alike, the one idle longest, so load spreads.
                rank = (self._ready_at(state, now), state.sent[-1] if state.sent else -1.0, key)
                if best is None or rank < best:
                    best = rank
            if best is None:
                return None
            ready, _, key = best
            self._key(key).sent.append(ready)
        return key, ready

    def penalize(self, key: str, seconds: float) -> None:
        with self._lock:
            state = self._key(key)
            state.blocked_until = max(state.blocked_until, self._clock() + seconds)

    def exhaust(self, key: str, method: str, seconds: float, reason: str) -> None:
        with self._lock:
            self._key(key).quota_until[method] = self._clock() + seconds

    def quota_resets(self, keys: Sequence[str], method: str) -> float | None:
        with self._lock:
            now = self._clock()
            waits = [self._key(k).quota_until.get(method, 0.0) - now for k in keys]
        if not waits or min(waits) <= 0:
            return None
        return min(waits)
