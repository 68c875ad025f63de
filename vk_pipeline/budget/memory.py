"""The rate budget in this process: a sliding window per token, and the `RateBudget` resource.

Enough for one process that holds its tokens alone (a test, a benchmark of the client); every
deployment uses the Postgres budget (`vk_pipeline.budget.postgres`), which every process shares.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from vk_pipeline.budget.core import Limiter, RateLimiter


@dataclass
class _Key:
    sent: deque[float]
    blocked_until: float = 0.0
    quota_until: dict[str, float] = field(default_factory=dict)
    held_until: float = 0.0
    held_for: str = ""


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
        self._kinds: dict[str, str] = {}
        self._credentials: dict[str, dict[str, Any]] = {}
        self._credentials_lock = threading.Lock()

    def _key(self, key: str) -> _Key:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Key(deque())
        return state

    @staticmethod
    def _ready_at(state: _Key, now: float, slots: int, span: float) -> float:
        ready = max(now, state.blocked_until)
        if len(state.sent) >= slots:
            ready = max(ready, state.sent[-slots] + span)
        return ready

    def _reserve(
        self, keys: Sequence[str], methods: Collection[str], windows: Sequence[tuple[int, float]]
    ) -> tuple[str, float] | None:
        with self._lock:
            now = self._clock()
            best: tuple[float, float, str, int] | None = None
            for key, (slots, span) in zip(keys, windows, strict=True):
                state = self._key(key)
                if state.held_until > now:
                    continue
                if any(state.quota_until.get(m, 0.0) > now for m in methods):
                    continue
                # Soonest first; among keys ready alike, the one idle longest, so load spreads.
                last = state.sent[-1] if state.sent else -1.0
                rank = (self._ready_at(state, now, slots, span), last, key, slots)
                if best is None or rank < best:
                    best = rank
            if best is None:
                return None
            ready, _, key, slots = best
            sent = self._key(key).sent
            sent.append(ready)
            while len(sent) > slots:
                sent.popleft()
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

    def kinds(self, keys: Sequence[str]) -> dict[str, str]:
        with self._lock:
            return {k: self._kinds[k] for k in keys if k in self._kinds}

    def learn_kind(self, key: str, kind: str, learned_by: str) -> None:
        with self._lock:
            self._kinds.setdefault(key, kind)

    def hold(self, key: str, seconds: float, reason: str) -> None:
        with self._lock:
            state = self._key(key)
            state.held_until = self._clock() + seconds
            state.held_for = reason

    def holds(self, keys: Sequence[str]) -> dict[str, tuple[str, float]]:
        with self._lock:
            now = self._clock()
            return {
                k: (self._key(k).held_for, self._key(k).held_until - now)
                for k in keys
                if self._key(k).held_until > now
            }

    def credential(self, cred: str) -> dict[str, Any] | None:
        with self._credentials_lock:
            row = self._credentials.get(cred)
            return dict(row) if row is not None else None

    def update_credential(
        self, cred: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        # One process: a lock is what every refresher honours.
        with self._credentials_lock:
            current = self._credentials.get(cred)
            new = change(dict(current) if current is not None else None)
            if new is not None:
                self._credentials[cred] = current = dict(new)
            return dict(current) if current is not None else None


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
