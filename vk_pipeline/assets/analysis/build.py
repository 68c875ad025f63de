"""Builds the analysis tables for one group in one transaction, fully or incrementally.

Modes, per asset and group:
- ``rebuild``: delete the group's slice, recompute it from all of the group's rows.
- ``incremental`` (post_stats, hashtags_mentions_links): recompute only the posts changed since
  the watermark (and their changed comments); see ``sql.py`` for why that set is complete.
- ``unchanged``: nothing of the group changed since the watermark; nothing is written.
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
    """Runs the SQL of ``sql.py`` against one schema; ``build_group`` is the unit of work."""

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

    def build_group(self, gid: int, assets: Collection[str]) -> GroupBuild:
        """Build ``assets`` for group ``gid`` in one transaction (committed by the caller)."""
        result = GroupBuild(gid)
        self._exec("SELECT pg_advisory_xact_lock(%(ns)s, %(gid)s)", ns=LOCK_NAMESPACE, gid=gid)
        # JIT compiles expressions for seconds on this class of machine before a statement that
        # runs in a fraction of one (measured: 2.8 s of 2.9 for an incremental post_stats).
        self._exec("SET LOCAL jit = off")
        watermark: datetime = self._one(WATERMARK)
        states = self._states(gid)
        since = min((s["watermark"] for a, s in states.items() if a in assets), default=None)
        changed = None
        if since is not None:
            changed = self._one(
                'SELECT count(*) FROM :"schema".posts WHERE group_id = %(gid)s'
                " AND last_changed_at >= %(since)s",
                gid=gid,
                since=since,
            )
            group_changed = self._one(
                'SELECT count(*) FROM :"schema".groups WHERE id = %(gid)s'
                " AND last_changed_at >= %(since)s",
                gid=gid,
                since=since,
            )
            changed += group_changed
        result.changed_posts = changed
        modes = {
            a: self._mode(a, states.get(a), changed, watermark)
            for a in ANALYSIS_TABLES
            if a in assets
        }
        self._group_comments = False
        if any(m == "rebuild" for m in modes.values()):
            started = time.perf_counter()
            self._exec(q.GROUP_COMMENTS, gid=gid)
            self._exec("ANALYZE _cm")
            self._group_comments = True
            result.seconds["read_comments"] = round(time.perf_counter() - started, 3)
        for asset, mode in modes.items():
            started = time.perf_counter()
            rows = 0
            if mode != "unchanged":
                state_since = states[asset]["watermark"] if asset in states else None
                rows = getattr(self, f"_{asset}")(gid, mode, state_since)
            result.modes[asset] = mode
            result.rows_written[asset] = rows
            result.seconds[asset] = round(time.perf_counter() - started, 3)
            full_at = watermark if mode == "rebuild" else states[asset]["full_built_at"]
            self._exec(
                'INSERT INTO :"schema".analysis_state'
                " (asset, group_id, watermark, built_at, mode, full_built_at)"
                " VALUES (%(asset)s, %(gid)s, %(wm)s, now(), %(mode)s, %(full)s)"
                " ON CONFLICT (asset, group_id) DO UPDATE SET watermark = excluded.watermark,"
                " built_at = excluded.built_at, mode = excluded.mode,"
                " full_built_at = excluded.full_built_at",
                asset=asset,
                gid=gid,
                wm=watermark,
                mode=mode,
                full=full_at,
            )
        if self._group_comments:
            self._exec("DROP TABLE _cm")
        return result

    def _states(self, gid: int) -> dict[str, dict[str, Any]]:
        with self.conn.cursor() as cur:
            rows = cur.execute(
                self._sql(
                    'SELECT asset, watermark, full_built_at FROM :"schema".analysis_state'
                    " WHERE group_id = %(gid)s"
                ),
                {"gid": gid},
            ).fetchall()
        return {a: {"watermark": w, "full_built_at": f} for a, w, f in rows}

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

    def _post_stats(self, gid: int, mode: str, since: datetime | None) -> int:
        if mode == "rebuild":
            self._exec(q.SCOPE_ALL, gid=gid)
            self._exec(q.POST_STATS_DELETE_GROUP, gid=gid)
        else:
            self._exec(q.SCOPE_CHANGED, gid=gid, since=since)
            self._exec(q.POST_STATS_DELETE)
        self._exec("ANALYZE _scope")
        comments = q.CM_ALL if mode == "rebuild" else q.CM_SCOPE
        rows = self._exec(q.POST_STATS_INSERT.format(comments=comments), gid=gid)
        if mode != "rebuild":
            self._exec(q.POST_STATS_RATES, gids=[gid])
        self._exec("DROP TABLE _scope")
        return rows

    def _group_activity_daily(self, gid: int, mode: str, since: datetime | None) -> int:
        self._exec(q.GROUP_ACTIVITY_DELETE, gid=gid)
        return self._exec(q.GROUP_ACTIVITY_REBUILD, gid=gid)

    def _top_commenters(self, gid: int, mode: str, since: datetime | None) -> int:
        self._exec(q.TOP_COMMENTERS_DELETE, gid=gid)
        return self._exec(q.TOP_COMMENTERS_REBUILD, gid=gid, top_n=self.options.top_n)

    def _hashtags_mentions_links(self, gid: int, mode: str, since: datetime | None) -> int:
        if mode == "rebuild":
            self._exec(q.ENTITIES_DELETE_GROUP, gid=gid)
            self._exec(q.ENTITIES_INSERT_ALL, gid=gid)
            self._exec(q.DAILY_ENTITIES_DELETE.format(days=""), gid=gid)
            return self._exec(q.DAILY_ENTITIES_INSERT.format(days=""), gid=gid)
        self._exec(q.SCOPE_CHANGED, gid=gid, since=since)
        self._exec(q.ITEMS_CHANGED, gid=gid, since=since)
        self._exec("ANALYZE _items")
        self._exec(q.ENTITIES_TOUCHED, gid=gid)
        self._exec(q.ENTITIES_DELETE_ITEMS)
        self._exec(q.ENTITIES_INSERT_ITEMS, gid=gid)
        self._exec(q.DAILY_ENTITIES_DELETE.format(days=q.ONLY_TOUCHED_DAYS), gid=gid)
        rows = self._exec(q.DAILY_ENTITIES_INSERT.format(days=q.ONLY_TOUCHED_DAYS), gid=gid)
        for table in ("_touched_days", "_items", "_scope"):
            self._exec(f"DROP TABLE {table}")
        return rows
