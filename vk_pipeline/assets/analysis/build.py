"""Builds the analysis tables for a batch of groups in one transaction, fully or incrementally.

Modes, per asset and group:
- ``rebuild``: delete the group's slice, recompute it from all of the group's rows.
- ``incremental`` (post_stats, hashtags_mentions_links): recompute only the posts changed since
  the watermark (and their changed comments); see ``sql.py`` for why that set is complete.
- ``unchanged``: nothing of the group changed since the watermark; nothing is written.
Each group's modes are its own; each asset's statements run once per mode for all the groups of
the batch in it.
group_activity_daily and top_commenters have no incremental mode: one new comment can move an
author's first day or the 30-day window of every author, and the per-partition rebuild is
measured to be cheap enough (benchmarks/analysis_bench.py, README "Analytics").
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from vk_pipeline.assets.analysis import sql as q

POST_STATS = "post_stats"
GROUP_ACTIVITY_DAILY = "group_activity_daily"
TOP_COMMENTERS = "top_commenters"
HASHTAGS_MENTIONS_LINKS = "hashtags_mentions_links"
ANALYSIS_TABLES = (POST_STATS, GROUP_ACTIVITY_DAILY, TOP_COMMENTERS, HASHTAGS_MENTIONS_LINKS)
INCREMENTAL = frozenset({POST_STATS, HASHTAGS_MENTIONS_LINKS})
LOCK_NAMESPACE = 0x766B_616E  # "vkan": advisory locks of analysis builds, one per group

# The oldest start of a transaction still running elsewhere: rows it commits later carry a
# last_changed_at from then (now() is the transaction start), so the next build must look that
# far back. Sessions of other roles are invisible without pg_read_all_stats (README).
WATERMARK = """
    SELECT least(now(), (SELECT min(xact_start) FROM pg_stat_activity
                         WHERE datname = current_database() AND pid <> pg_backend_pid()
                           AND xact_start IS NOT NULL))
"""


# Groups none of whose posts changed since their build, each with whether its own row changed
# (members, which VK moves every day for most communities).
QUIET_GROUPS = """
    WITH st AS (
        SELECT group_id, min(watermark) AS since, min(full_built_at) AS full_at, count(*) AS n
        FROM :"schema".analysis_state
        WHERE group_id = ANY(%(gids)s) AND asset = ANY(%(assets)s)
        GROUP BY group_id
    )
    SELECT st.group_id, EXISTS (SELECT 1 FROM :"schema".groups g
                                WHERE g.id = st.group_id AND g.last_changed_at >= st.since)
    FROM st
    WHERE st.n = cardinality(%(assets)s::text[])
      AND st.full_at >= now() - %(rebuild_after)s
      AND NOT EXISTS (SELECT 1 FROM :"schema".posts p
                      WHERE p.group_id = st.group_id AND p.last_changed_at >= st.since)
"""


@dataclass
class GroupBuild:
    """What one group's build did, per asset."""

    group_id: int
    modes: dict[str, str] = field(default_factory=dict)
    rows_written: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    changed_posts: int | None = None

    @classmethod
    def unchanged(cls, gid: int, assets: Collection[str]) -> GroupBuild:
        names = [a for a in ANALYSIS_TABLES if a in assets]
        return cls(
            gid,
            modes=dict.fromkeys(names, "unchanged"),
            rows_written=dict.fromkeys(names, 0),
            seconds=dict.fromkeys(names, 0.0),
            changed_posts=0,
        )


@dataclass(frozen=True)
class BuildOptions:
    full_rebuild: bool = False
    top_n: int = 100
    rebuild_after: timedelta = timedelta(days=7)


class Builder:
    """Runs the SQL of ``sql.py`` against one schema; ``build_groups`` is the unit of work."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str, options: BuildOptions) -> None:
        self.conn = conn
        self.schema_ident = sql.Identifier(schema).as_string(conn)
        self.options = options

    def _sql(self, text: str) -> bytes:
        return text.replace(':"schema"', self.schema_ident).encode()

    def _exec(self, text: str, **params: Any) -> int:
        with self.conn.cursor() as cur:
            cur.execute(self._sql(text), params or None)
            return cur.rowcount

    def _one(self, text: str, **params: Any) -> Any:
        with self.conn.cursor() as cur:
            row = cur.execute(self._sql(text), params or None).fetchone()
            return row[0] if row else None

    def quiet_groups(self, gids: list[int], assets: Collection[str]) -> dict[int, bool]:
        """Groups none of whose posts changed since every asset's last build (the last full one
        recent), each with whether its own row changed. One query for the run, so a refresh of
        quiet groups does not pay a transaction per group to learn that nothing changed."""
        if self.options.full_rebuild or not gids:
            return {}
        with self.conn.cursor() as cur:
            rows = cur.execute(
                self._sql(QUIET_GROUPS),
                {"gids": gids, "assets": list(assets), "rebuild_after": self.options.rebuild_after},
            ).fetchall()
        return dict(rows)

    def update_rates(self, gids: list[int], assets: Collection[str]) -> dict[int, GroupBuild]:
        """Brings groups whose own row changed but none of their posts up to date, in one
        transaction (committed by the caller) for all of them: only post_stats reads the group
        row (its engagement rates, against members), so that is one UPDATE, and the other
        tables have nothing to do. Groups whose posts changed since `quiet_groups` looked are
        left out of the result, for `build_group`."""
        if not gids:
            return {}
        started = time.perf_counter()
        # Sorted, as no two builds then wait on each other's locks in opposite order.
        self._exec(
            "SELECT pg_advisory_xact_lock(%(ns)s, g) FROM unnest(%(gids)s::int[]) AS g",
            ns=LOCK_NAMESPACE,
            gids=sorted(gids),
        )
        self._exec("SET LOCAL jit = off")
        # Taken before the check below: what that check cannot see yet commits with a
        # last_changed_at at or after this watermark, so the next build sees it.
        watermark: datetime = self._one(WATERMARK)
        quiet = [gid for gid, changed in self.quiet_groups(gids, assets).items() if changed]
        rates: dict[int, int] = {}
        if POST_STATS in assets and quiet:
            with self.conn.cursor() as cur:
                rows = cur.execute(self._sql(q.POST_STATS_RATES), {"gids": quiet}).fetchall()
            rates = dict(rows)
        names = [a for a in ANALYSIS_TABLES if a in assets]
        # Watermarks move on; each asset keeps its last mode and full build.
        self._exec(
            'UPDATE :"schema".analysis_state SET watermark = %(wm)s, built_at = now()'
            " WHERE group_id = ANY(%(gids)s) AND asset = ANY(%(assets)s)",
            wm=watermark,
            gids=quiet,
            assets=names,
        )
        seconds = round((time.perf_counter() - started) / max(1, len(quiet)), 4)
        return {
            gid: GroupBuild(
                gid,
                modes={a: "incremental" if a == POST_STATS else "unchanged" for a in names},
                rows_written={a: rates.get(gid, 0) if a == POST_STATS else 0 for a in names},
                seconds={a: seconds if a == POST_STATS else 0.0 for a in names},
                changed_posts=0,
            )
            for gid in quiet
        }

    def build_groups(self, gids: list[int], assets: Collection[str]) -> list[GroupBuild]:
        """Build ``assets`` for the groups ``gids`` in one transaction (committed by the caller):
        each group's mode is its own, and each asset's statements run once per mode over all the
        groups in it."""
        gids = sorted(set(gids))
        if not gids:
            return []
        # Sorted, as no two builds then wait on each other's locks in opposite order.
        self._exec(
            "SELECT pg_advisory_xact_lock(%(ns)s, g) FROM unnest(%(gids)s::int[]) AS g",
            ns=LOCK_NAMESPACE,
            gids=gids,
        )
        # JIT compiles expressions for seconds on this class of machine before a statement that
        # runs in a fraction of one (measured: 2.8 s of 2.9 for an incremental post_stats).
        self._exec("SET LOCAL jit = off")
        watermark: datetime = self._one(WATERMARK)
        states = self._states(gids)
        names = [a for a in ANALYSIS_TABLES if a in assets]
        since = {
            gid: min((st[a]["watermark"] for a in names if a in st), default=None)
            for gid, st in states.items()
        }
        changed = self._changed({gid: s for gid, s in since.items() if s is not None})
        builds = {gid: GroupBuild(gid, changed_posts=changed.get(gid)) for gid in gids}
        modes = {
            gid: {a: self._mode(a, states.get(gid, {}).get(a), changed.get(gid), watermark)
                  for a in names}
            for gid in gids
        }  # fmt: skip
        rebuilding = [gid for gid in gids if "rebuild" in modes[gid].values()]
        seconds: dict[str, float] = {}
        if rebuilding:
            t0 = time.perf_counter()
            self._exec(q.GROUP_COMMENTS, gids=rebuilding)
            self._exec("ANALYZE _cm")
            seconds["read_comments"] = time.perf_counter() - t0
        written: dict[str, dict[int, int]] = {}
        for asset in names:
            t0 = time.perf_counter()
            rows: dict[int, int] = {}
            for mode in ("rebuild", "incremental"):
                batch = [gid for gid in gids if modes[gid][asset] == mode]
                if not batch:
                    continue
                marks = [states[gid][asset]["watermark"] if mode != "rebuild" else None
                         for gid in batch]  # fmt: skip
                self._exec(q.WATERMARKS, gids=batch, since=marks)
                rows.update(getattr(self, f"_{asset}")(batch, mode))
                self._exec("DROP TABLE _w")
            written[asset] = rows
            seconds[asset] = time.perf_counter() - t0
        if rebuilding:
            self._exec("DROP TABLE _cm")
        # Each asset's state: the watermark moves on; a rebuild is its last full build.
        state_rows = [
            (
                asset,
                gid,
                modes[gid][asset],
                watermark
                if modes[gid][asset] == "rebuild"
                else states[gid][asset]["full_built_at"],
            )
            for gid in gids
            for asset in names
        ]
        self._exec(
            q.STATE_UPSERT,
            assets=[r[0] for r in state_rows],
            gids=[r[1] for r in state_rows],
            modes=[r[2] for r in state_rows],
            fulls=[r[3] for r in state_rows],
            wm=watermark,
        )
        # Seconds are the batch's, shared out evenly: the statements run for all its groups.
        share = {k: round(v / len(gids), 4) for k, v in seconds.items()}
        for gid, build in builds.items():
            for asset in names:
                build.modes[asset] = modes[gid][asset]
                build.rows_written[asset] = written[asset].get(gid, 0)
                build.seconds[asset] = share[asset] if modes[gid][asset] != "unchanged" else 0.0
            if gid in rebuilding:
                build.seconds["read_comments"] = share["read_comments"]
        return [builds[gid] for gid in gids]

    def _states(self, gids: list[int]) -> dict[int, dict[str, dict[str, Any]]]:
        with self.conn.cursor() as cur:
            rows = cur.execute(
                self._sql(
                    'SELECT group_id, asset, watermark, full_built_at FROM :"schema".analysis_state'
                    " WHERE group_id = ANY(%(gids)s)"
                ),
                {"gids": gids},
            ).fetchall()
        states: dict[int, dict[str, dict[str, Any]]] = {}
        for gid, asset, wm, full in rows:
            states.setdefault(gid, {})[asset] = {"watermark": wm, "full_built_at": full}
        return states

    def _changed(self, since: dict[int, datetime]) -> dict[int, int]:
        """Per group: its posts changed since `since`, plus one if its own row did."""
        if not since:
            return {}
        with self.conn.cursor() as cur:
            rows = cur.execute(
                self._sql(q.CHANGED),
                {"gids": list(since), "since": list(since.values())},
            ).fetchall()
        return {int(gid): int(n) for gid, n in rows}

    def _mode(
        self, asset: str, state: dict[str, Any] | None, changed: int | None, now: datetime
    ) -> str:
        if state is None or self.options.full_rebuild:
            return "rebuild"
        if now - state["full_built_at"] > self.options.rebuild_after:
            return "rebuild"
        if changed == 0:
            return "unchanged"
        return "incremental" if asset in INCREMENTAL else "rebuild"

    # ---------------------------------------------------------------------------------- assets

    def _counts(self, text: str, **params: Any) -> dict[int, int]:
        with self.conn.cursor() as cur:
            return {int(g): int(n) for g, n in cur.execute(self._sql(text), params).fetchall()}

    def _post_stats(self, gids: list[int], mode: str) -> dict[int, int]:
        if mode == "rebuild":
            self._exec(q.SCOPE_ALL, gids=gids)
            self._exec(q.POST_STATS_DELETE_GROUP, gids=gids)
        else:
            self._exec(q.SCOPE_CHANGED)
            self._exec(q.POST_STATS_DELETE)
        self._exec("ANALYZE _scope")
        comments = q.CM_ALL if mode == "rebuild" else q.CM_SCOPE
        rows = self._counts(q.POST_STATS_INSERT.format(comments=comments), gids=gids)
        if mode != "rebuild":
            self._exec(q.POST_STATS_RATES, gids=gids)
        self._exec("DROP TABLE _scope")
        return rows

    def _group_activity_daily(self, gids: list[int], mode: str) -> dict[int, int]:
        self._exec(q.GROUP_ACTIVITY_DELETE, gids=gids)
        return self._counts(q.GROUP_ACTIVITY_REBUILD, gids=gids)

    def _top_commenters(self, gids: list[int], mode: str) -> dict[int, int]:
        self._exec(q.TOP_COMMENTERS_DELETE, gids=gids)
        return self._counts(q.TOP_COMMENTERS_REBUILD, gids=gids, top_n=self.options.top_n)

    def _hashtags_mentions_links(self, gids: list[int], mode: str) -> dict[int, int]:
        if mode == "rebuild":
            self._exec(q.ENTITIES_DELETE_GROUP, gids=gids)
            self._exec(q.ENTITIES_INSERT_ALL, gids=gids)
            self._exec(q.DAILY_ENTITIES_DELETE.format(days=""), gids=gids)
            return self._counts(q.DAILY_ENTITIES_INSERT.format(days=""), gids=gids)
        self._exec(q.SCOPE_CHANGED)
        self._exec(q.ITEMS_CHANGED, gids=gids)
        self._exec("ANALYZE _items")
        self._exec(q.ENTITIES_TOUCHED, gids=gids)
        self._exec(q.ENTITIES_DELETE_ITEMS)
        self._exec(q.ENTITIES_INSERT_ITEMS, gids=gids)
        self._exec(q.DAILY_ENTITIES_DELETE.format(days=q.ONLY_TOUCHED_DAYS), gids=gids)
        rows = self._counts(q.DAILY_ENTITIES_INSERT.format(days=q.ONLY_TOUCHED_DAYS), gids=gids)
        for table in ("_touched_days", "_items", "_scope"):
            self._exec(f"DROP TABLE {table}")
        return rows
