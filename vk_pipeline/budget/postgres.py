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
from datetime import UTC, datetime
from typing import Any

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
            for name in ("rate_reserve_each", "rate_penalize", "rate_exhaust", "quota_resets")
        }
        self._schema = schema
        self._table = {
            name: sql.Identifier(schema, name)
            for name in ("token_kinds", "token_holds", "vkid_credentials")
        }

    def close(self) -> None:
        self._pool.close()

    def _call(self, fn: str, *args: object) -> list[tuple]:
        query = sql.SQL("SELECT * FROM {}({})").format(
            self._fn[fn], sql.SQL(", ").join(sql.Placeholder() * len(args))
        )
        with self._pool.connection() as conn:
            return conn.execute(query, args).fetchall()

    def _reserve(
        self, keys: Sequence[str], methods: Collection[str], windows: Sequence[tuple[int, float]]
    ) -> tuple[str, float] | None:
        # The database answers with a wait on its own clock, so machines' clocks need not agree.
        # Counted from the answer's arrival: the slot then goes out a little late rather than
        # early, which the window's margin absorbs.
        rows = self._call(
            "rate_reserve_each",
            list(keys),
            sorted(methods),
            [w[0] for w in windows],
            [w[1] for w in windows],
        )
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

    def _query(self, query: sql.Composable, *args: object) -> list[tuple]:
        with self._pool.connection() as conn:
            cur = conn.execute(query, args)
            return cur.fetchall() if cur.description else []

    def kinds(self, keys: Sequence[str]) -> dict[str, str]:
        rows = self._query(
            sql.SQL("SELECT token_fp, kind FROM {} WHERE token_fp = ANY(%s)").format(
                self._table["token_kinds"]
            ),
            list(keys),
        )
        return {str(fp): str(kind) for fp, kind in rows}

    def learn_kind(self, key: str, kind: str, learned_by: str) -> None:
        # First answer wins: a token's kind never changes, and two processes learn the same one.
        self._query(
            sql.SQL(
                "INSERT INTO {} (token_fp, kind, learned_by) VALUES (%s, %s, %s)"
                " ON CONFLICT (token_fp) DO NOTHING"
            ).format(self._table["token_kinds"]),
            key,
            kind,
            learned_by,
        )

    def hold(self, key: str, seconds: float, reason: str) -> None:
        self._query(
            sql.SQL(
                "INSERT INTO {} (token_fp, reason, until)"
                " VALUES (%s, %s, clock_timestamp() + make_interval(secs => %s))"
                " ON CONFLICT (token_fp) DO UPDATE SET reason = excluded.reason,"
                " held_at = now(), until = excluded.until"
            ).format(self._table["token_holds"]),
            key,
            reason,
            seconds,
        )

    def holds(self, keys: Sequence[str]) -> dict[str, tuple[str, float]]:
        rows = self._query(
            sql.SQL(
                "SELECT token_fp, reason, extract(epoch FROM until - clock_timestamp())"
                " FROM {} WHERE token_fp = ANY(%s) AND until > clock_timestamp()"
            ).format(self._table["token_holds"]),
            list(keys),
        )
        return {str(fp): (str(reason), float(left)) for fp, reason, left in rows}

    def report(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """What the budget knows of each key (never a token): requests reserved, last use, kind,
        quota stops, hold, and the VK ID credential's expiry when the key is one."""
        out: dict[str, dict[str, Any]] = {
            k: {"requests": 0, "last_used": None, "kind": None, "learned_by": None,
                "quotas": [], "set_aside": None, "vk_id": None}
            for k in keys
        }  # fmt: skip
        t = self._table
        schema = self._schema
        queries: list[tuple[str, sql.Composable]] = [
            ("budget", sql.SQL(
                "SELECT token_fp, requests, updated_at FROM {} WHERE token_fp = ANY(%s)"
            ).format(sql.Identifier(schema, "rate_budget"))),
            ("kinds", sql.SQL(
                "SELECT token_fp, kind, learned_by FROM {} WHERE token_fp = ANY(%s)"
            ).format(t["token_kinds"])),
            ("quotas", sql.SQL(
                "SELECT token_fp, method, resets_at, reason FROM {} WHERE token_fp = ANY(%s)"
                " AND resets_at > clock_timestamp() ORDER BY method"
            ).format(sql.Identifier(schema, "token_quotas"))),
            ("holds", sql.SQL(
                "SELECT token_fp, reason, until FROM {} WHERE token_fp = ANY(%s)"
                " AND until > clock_timestamp()"
            ).format(t["token_holds"])),
            ("vkid", sql.SQL(
                "SELECT cred_fp, expires_at, refreshes, refreshed_at, last_error,"
                " refresh_enc IS NOT NULL FROM {} WHERE cred_fp = ANY(%s)"
            ).format(t["vkid_credentials"])),
        ]  # fmt: skip
        for name, query in queries:
            for row in self._query(query, list(keys)):
                entry = out[str(row[0])]
                if name == "budget":
                    entry["requests"], entry["last_used"] = int(row[1]), row[2]
                elif name == "kinds":
                    entry["kind"], entry["learned_by"] = row[1], row[2]
                elif name == "quotas":
                    entry["quotas"].append({"method": row[1], "resets_at": row[2], "why": row[3]})
                elif name == "holds":
                    entry["set_aside"] = {"reason": row[1], "until": row[2]}
                else:
                    entry["vk_id"] = {
                        "expires_at": row[1],
                        "refreshes": int(row[2]),
                        "refreshed_at": row[3],
                        "last_error": row[4],
                        "alive": bool(row[5]),
                    }
        return out

    _CREDENTIAL_COLUMNS = (
        "seed_fp",
        "refresh_enc",
        "access_enc",
        "expires_at",
        "refreshes",
        "refreshed_at",
        "last_error",
    )

    def _credential_row(self, conn: Any, cred: str, lock: bool) -> dict[str, Any] | None:
        query = sql.SQL("SELECT {} FROM {} WHERE cred_fp = %s{}").format(
            sql.SQL(", ").join(map(sql.Identifier, self._CREDENTIAL_COLUMNS)),
            self._table["vkid_credentials"],
            sql.SQL(" FOR UPDATE" if lock else ""),
        )
        row = conn.execute(query, (cred,)).fetchone()
        if row is None:
            return None
        out = dict(zip(self._CREDENTIAL_COLUMNS, row, strict=True))
        for name in ("expires_at", "refreshed_at"):
            if out[name] is not None:
                out[name] = out[name].timestamp()
        return out

    def credential(self, cred: str) -> dict[str, Any] | None:
        with self._pool.connection() as conn:
            return self._credential_row(conn, cred, lock=False)

    def update_credential(
        self, cred: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        with self._pool.connection() as conn, conn.transaction():
            # One refresher per credential on every machine: VK ID's refresh tokens are single
            # use, so two processes refreshing with the same one would leave one of them dead.
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"vkid:{cred}",))
            current = self._credential_row(conn, cred, lock=True)
            new = change(dict(current) if current is not None else None)
            if new is None:
                return current
            values = {c: new.get(c) for c in self._CREDENTIAL_COLUMNS}
            for name in ("expires_at", "refreshed_at"):
                if values[name] is not None:
                    values[name] = datetime.fromtimestamp(float(values[name]), UTC)
            values["refreshes"] = int(values["refreshes"] or 0)
            columns = ["cred_fp", *self._CREDENTIAL_COLUMNS]
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (cred_fp) DO UPDATE SET {}"
                ).format(
                    self._table["vkid_credentials"],
                    sql.SQL(", ").join(map(sql.Identifier, columns)),
                    sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                    sql.SQL(", ").join(
                        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c))
                        for c in self._CREDENTIAL_COLUMNS
                    ),
                ),
                [cred, *values.values()],
            )
            return self._credential_row(conn, cred, lock=False)


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
