"""The rate budget in this process: a sliding window per token, and the `RateBudget` resource.

Enough for one process that holds its tokens alone (a test, a benchmark of the client); every
deployment uses the Postgres budget (`vk_pipeline.budget.postgres`), which every process shares.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import dagster as dg

from vk_pipeline.budget.core import Limiter, RateLimiter


@dataclass
class _Key:
    sent: deque[float]
    blocked_until: float = 0.0
    quota_until: dict[str, float] = field(default_factory=dict)


class SlidingWindowLimiter(Limiter):
    """At most `rate` sends per key in any window of `window + margin` seconds, in this process.

    A sliding window, unlike even spacing, lets a request go as soon as the oldest of the last
    `rate` leaves the window, so slow responses do not leave the budget idle. Slots are reserved
    before sleeping, so threads waiting together are served in turn without polling.
    """

    def __init__(
        self,
        rate: float,
        *,
        window: float = 1.0,
        margin: float = 0.06,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        extra = {k: v for k, v in (("clock", clock), ("sleep", sleep)) if v is not None}
        super().__init__(rate, window=window, margin=margin, **extra)
        self._keys: dict[str, _Key] = {}
        self._lock = threading.Lock()

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


_limiters: dict[tuple[float, float], RateLimiter] = {}
_limiters_lock = threading.Lock()


class RateBudget(dg.ConfigurableResource):
    """Where the rate budget of the tokens lives: here, in this process.

    One limiter per rate per process, keyed by token fingerprint inside, so two clients of one
    token in a process never double its rate. `PostgresRateBudget` shares the budget with every
    process on every machine that uses the same database."""

    def limiter(self, requests_per_second: float, margin: float) -> RateLimiter:
        key = (requests_per_second, margin)
        with _limiters_lock:
            if key not in _limiters:
                _limiters[key] = SlidingWindowLimiter(requests_per_second, margin=margin)
            return _limiters[key]
