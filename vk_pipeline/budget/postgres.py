"""The VK rate budget kept in Postgres: one budget per token for every process on every machine.

The backend behind `core.Limiter` here is the SQL functions of migration 0003: a request costs one round trip (`rate_reserve`, which picks the token
that can send soonest and returns how long to wait), waiting is a sleep rather than polling, and
every time is the database's, so the machines' clocks need not agree.

pyrate-limiter's PostgresBucket was considered and not taken: it keeps one table per bucket with
a row per request (pruned by a background leaker), takes an exclusive table lock with NOWAIT and
rejects on contention (the limiter then retries, i.e. polls), costs several round trips per
acquire, and has no notion of a pool of tokens to choose from, of a penalty for VK's error 6, or
of per-method quotas.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence

import psycopg_pool
from psycopg import sql

from vk_pipeline.budget.core import Limiter, RateLimiter
from vk_pipeline.budget.memory import RateBudget
from vk_pipeline.storage import PostgresResource

_lock = threading.Lock()
_limiters: dict[tuple[str, str, float, float], PostgresLimiter] = {}


class PostgresLimiter(Limiter):
    """`RateLimiter` over the `rate_budget` and `token_quotas` tables of one schema."""

    def __init__(
        self,
        url: str,
        schema: str,
        rate: float,
        *,
        window: float = 1.0,
        margin: float = 0.06,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        extra = {k: v for k, v in (("clock", clock), ("sleep", sleep)) if v is not None}
        super().__init__(rate, window=window, margin=margin, **extra)
        # Autocommit: a reservation is one statement and one round trip, and its row locks are
        # held for that statement only.
        # min_size 0: nothing is held open (nor reconnected in the background) while idle.
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=0,
            max_size=8,
            kwargs={"autocommit": True, "application_name": "vk_pipeline-budget"},
            open=True,
            name="vk_pipeline-budget",
        )
        self._fn = {
            name: sql.Identifier(schema, name)
            for name in ("rate_reserve", "rate_penalize", "rate_exhaust", "quota_resets")
        }

    def close(self) -> None:
        self._pool.close()

    def _call(self, fn: str, *args: object) -> list[tuple]:
        query = sql.SQL("SELECT * FROM {}({})").format(
            self._fn[fn], sql.SQL(", ").join(sql.Placeholder() * len(args))
        )
        with self._pool.connection() as conn:
            return conn.execute(query, args).fetchall()

    def _reserve(self, keys: Sequence[str], methods: Collection[str]) -> tuple[str, float] | None:
        # The database answers with a wait on its own clock, so machines' clocks need not agree.
        # Counted from the answer's arrival: the slot then goes out a little late rather than
        # early, which the window's margin absorbs.
        rows = self._call("rate_reserve", list(keys), sorted(methods), self._slots, self._span)
        if not rows:
            return None
        key, wait = rows[0]
        return str(key), self._clock() + max(0.0, float(wait))

    def penalize(self, key: str, seconds: float) -> None:
        self._call("rate_penalize", key, seconds)

    def exhaust(self, key: str, method: str, seconds: float, reason: str) -> None:
        self._call("rate_exhaust", key, method, seconds, reason)

    def quota_resets(self, keys: Sequence[str], method: str) -> float | None:
        [(seconds,)] = self._call("quota_resets", list(keys), method)
        return None if seconds is None else float(seconds)


def postgres_limiter(url: str, schema: str, rate: float, margin: float) -> PostgresLimiter:
    """One limiter (and connection pool) per database, schema and rate in a process."""
    key = (url, schema, rate, margin)
    with _lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = _limiters[key] = PostgresLimiter(url, schema, rate, margin=margin)
        return limiter


def close_limiters() -> None:
    with _lock:
        for limiter in _limiters.values():
            limiter.close()
        _limiters.clear()


class PostgresRateBudget(RateBudget):
    """The tokens' rate budget and quotas in the data database, shared by every run."""

    postgres: PostgresResource

    def limiter(self, requests_per_second: float, margin: float) -> RateLimiter:
        self.postgres.ensure_schema()  # also reports an unreachable database, password-free
        return postgres_limiter(
            self.postgres.resolved_url(), self.postgres.schema_name, requests_per_second, margin
        )
