"""The rate budget's contract and its one acquire loop, shared by every backend.

VK counts requests per token in a one-second window measured where they arrive. A backend keeps
the reservations (in this process, or in Postgres for every process on every machine) and says
which token may send when; the loop here sleeps until then and gives a slot up when the sleeper
woke too late to use it safely.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

# How late a reserved send may go out before its slot is given up (see `Limiter.acquire`).
LATE_SECONDS = 0.03
MAX_LATE_RETRIES = 5


class RateLimiter(Protocol):
    """What the VK client asks before every request."""

    def acquire(
        self,
        keys: Sequence[str],
        methods: Collection[str] = (),
        rates: Mapping[str, float] | None = None,
    ) -> str | None:
        """Block until one of `keys` may send a request and return it: the key that can send
        soonest. Keys whose daily quota for one of `methods` is spent, and keys on hold, are
        skipped; None when that leaves no key. `rates`: a key's own requests per second (each
        kind of token has its own), else the limiter's."""

    def penalize(self, key: str, seconds: float) -> None:
        """Hold every request of `key` back for `seconds` (VK said "too many requests")."""

    def exhaust(self, key: str, method: str, seconds: float, reason: str) -> None:
        """`key` reached VK's quota for `method`: skip it for that method for `seconds`."""

    def quota_resets(self, keys: Sequence[str], method: str) -> float | None:
        """Seconds until the first of `keys` may call `method` again; None if one may now."""

    # What every process knows about the tokens besides their budget (by fingerprint only).

    def kinds(self, keys: Sequence[str]) -> dict[str, str]:
        """The kinds VK's answers settled for those of `keys` whose kind is known."""

    def learn_kind(self, key: str, kind: str, learned_by: str) -> None:
        """Record `key`'s kind (first answer wins; a kind never changes)."""

    def hold(self, key: str, seconds: float, reason: str) -> None:
        """Take `key` out of use for `seconds` (VK asked for a captcha)."""

    def holds(self, keys: Sequence[str]) -> dict[str, tuple[str, float]]:
        """Keys on hold now: reason and seconds left."""

    def credential(self, cred: str) -> dict[str, Any] | None:
        """A stored VK ID credential's row (encrypted tokens), or None."""

    def update_credential(
        self, cred: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Under a lock every process honours: re-read the credential's row, let `change` return
        the new row (None: keep it) and store it; the row as stored afterwards."""


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

        self._rate = rate
        self._window = window
        self._margin = margin

    def windows(
        self, keys: Sequence[str], rates: Mapping[str, float] | None
    ) -> list[tuple[int, float]]:
        """(sends, span) of each key: its own rate when given, else the limiter's."""
        if not rates:
            return [(self._slots, self._span)] * len(keys)
        return [
            window_slots(rates[k], self._window, self._margin)
            if k in rates
            else (self._slots, self._span)
            for k in keys
        ]

    @abstractmethod
    def _reserve(
        self, keys: Sequence[str], methods: Collection[str], windows: Sequence[tuple[int, float]]
    ) -> tuple[str, float] | None:
        """Reserve the soonest slot among `keys` (skipping quota-stopped and held ones), each
        with its own (sends, span) window: the key and when the slot is, on this limiter's
        clock; None when no key is left."""

    def acquire(
        self,
        keys: Sequence[str],
        methods: Collection[str] = (),
        rates: Mapping[str, float] | None = None,
    ) -> str | None:
        windows = self.windows(keys, rates)
        for attempt in range(MAX_LATE_RETRIES + 1):
            reserved = self._reserve(keys, methods, windows)
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

    @abstractmethod
    def kinds(self, keys: Sequence[str]) -> dict[str, str]: ...

    @abstractmethod
    def learn_kind(self, key: str, kind: str, learned_by: str) -> None: ...

    @abstractmethod
    def hold(self, key: str, seconds: float, reason: str) -> None: ...

    @abstractmethod
    def holds(self, keys: Sequence[str]) -> dict[str, tuple[str, float]]: ...

    @abstractmethod
    def credential(self, cred: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def update_credential(
        self, cred: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    ) -> dict[str, Any] | None: ...
