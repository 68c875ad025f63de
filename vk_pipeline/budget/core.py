"""The rate budget's contract and its one acquire loop, shared by every backend.

VK counts requests per token in a one-second window measured where they arrive. A backend keeps
the reservations (in this process, or in Postgres for every process on every machine) and says
which token may send when; the loop here sleeps until then and gives a slot up when the sleeper
woke too late to use it safely.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

# How late a reserved send may go out before its slot is given up (see `Limiter.acquire`).
LATE_SECONDS = 0.03
MAX_LATE_RETRIES = 5


class RateLimiter(Protocol):
    """What the VK client asks before every request."""

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


def window_slots(rate: float, window: float, margin: float) -> tuple[int, float]:
    """`rate` sends per `window` as (sends, span): at most `sends` in any `span` seconds.

    A fractional rate (0.5 rps) becomes 1 send per 2 s windows; the margin absorbs the jitter
    between sending and VK's arrival clock (vk-io and VK's Android SDK found 1000/3 ms too tight
    and settled near 1100/3 ms)."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    slots = max(1, int(rate))
    return slots, window * slots / rate + margin


class Limiter(ABC):
    """A `RateLimiter` whose backend reserves slots; the waiting is done here, once for all."""

    def __init__(
        self,
        rate: float,
        *,
        window: float = 1.0,
        margin: float = 0.06,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._slots, self._span = window_slots(rate, window, margin)
        self._clock = clock
        self._sleep = sleep

    @abstractmethod
    def _reserve(self, keys: Sequence[str], methods: Collection[str]) -> tuple[str, float] | None:
        """Reserve the soonest slot among `keys` (skipping quota-stopped ones): the key and when
        the slot is, on this limiter's clock; None when no key is left."""

    def acquire(self, keys: Sequence[str], methods: Collection[str] = ()) -> str | None:
        for attempt in range(MAX_LATE_RETRIES + 1):
            reserved = self._reserve(keys, methods)
            if reserved is None:
                return None
            key, ready = reserved
            wait = ready - self._clock()
            if wait > 0:
                self._sleep(wait)
            # A slot is only safe when used on time: sent late, it lands next to the slots
            # reserved after it. A sender held up past its slot (a busy machine, a slow round
            # trip) leaves that slot unused and takes a fresh one.
            if self._clock() - ready <= LATE_SECONDS or attempt == MAX_LATE_RETRIES:
                return key
        raise AssertionError("unreachable")

    @abstractmethod
    def penalize(self, key: str, seconds: float) -> None: ...

    @abstractmethod
    def exhaust(self, key: str, method: str, seconds: float, reason: str) -> None: ...

    @abstractmethod
    def quota_resets(self, keys: Sequence[str], method: str) -> float | None: ...
