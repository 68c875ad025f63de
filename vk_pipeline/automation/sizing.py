"""How much VK work a group's refresh is expected to cost, from what is stored: runs are sized by it.

A refresh lists each wall in full (one call per 100 posts, `CrawlConfig.full_listing`), re-reads
the comments of posts inside the lookback window, and about 1/verify_days of every other post's
comment pages (the verification cycle). Calls are packed 25 to an `execute` request. The estimate
is rough on purpose: it only has to tell a quiet group (a fraction of a request) from a busy one
(dozens), so that quiet groups go hundreds to a run and busy ones a few.

A group never listed to its end costs what today's 50-groups-a-run assumes (its size is unknown
until its first load). When the store cannot be read, every group counts as unknown: the refresh
still runs, at most 50 groups a run, and the tick says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import sql

from vk_pipeline.assets.refresh import RefreshPolicy
from vk_pipeline.automation.chunks import MAX_GROUPS_PER_RUN, weighted_chunks
from vk_pipeline.storage import PostgresResource

CALLS_PER_REQUEST = 25
PAGE = 100  # posts or comments per call
# VK work one run is sized for: ~70 s of one token's budget. Runs overlap (max_concurrent_runs), so
# while one starts or writes, another keeps the token busy; a run this size amortises its start.
RUN_BUDGET_REQUESTS = 200.0
# Groups per run at most: the steps' per-group work (rows, checks, metadata) grows with it. A
# refresh of 2,000 quiet groups is then three runs, which the `vk_api` pool (3) runs at once: at
# 500, the fourth waited ~45 s for a slot and the fifth held five groups (refresh_scale.py).
MAX_GROUPS_PER_SIZED_RUN = 700
# A group not yet listed weighs what fits MAX_GROUPS_PER_RUN of them into one run's budget.
UNKNOWN_WEIGHT = RUN_BUDGET_REQUESTS / MAX_GROUPS_PER_RUN
# The refresh policy's defaults: the schedule launches its runs with them.
LOOKBACK_DAYS = RefreshPolicy.lookback_days
VERIFY_DAYS = RefreshPolicy.verify_days

WORK_SQL = """
    SELECT l.group_id,
           count(p.id) AS posts,
           coalesce(sum(ceil(greatest(p.comments_count, 0) / {page}))
                    FILTER (WHERE p.date >= %(recent)s), 0) AS recent_pages,
           coalesce(sum(ceil(greatest(p.comments_count, 0) / {page})), 0) AS all_pages
    FROM {listings} l
    LEFT JOIN {posts} p ON p.group_id = l.group_id AND NOT p.is_deleted
    WHERE l.group_id = ANY(%(gids)s)
    GROUP BY l.group_id
"""


@dataclass(frozen=True)
class Sizing:
    chunks: list[list[str]]
    groups: int
    expected_requests: float
    unknown_groups: int
    note: str = ""


def expected_requests(posts: int, recent_pages: float, all_pages: float) -> float:
    """VK requests one group's refresh is expected to cost."""
    calls = math.ceil(posts / PAGE) + recent_pages + all_pages / VERIFY_DAYS
    return max(calls, 1) / CALLS_PER_REQUEST


def group_weights(
    postgres: PostgresResource, keys: Sequence[str], now: datetime
) -> dict[str, float]:
    """Expected requests per key of a group that was listed before (others are absent)."""
    gids = [int(k) for k in keys if k.lstrip("-").isdigit()]
    if not gids:
        return {}
    query = sql.SQL(WORK_SQL).format(
        page=sql.Literal(float(PAGE)),
        listings=sql.Identifier(postgres.schema_name, "wall_listings"),
        posts=sql.Identifier(postgres.schema_name, "posts"),
    )
    rows = postgres.execute(query, {"gids": gids, "recent": now - timedelta(days=LOOKBACK_DAYS)})
    return {
        str(gid): expected_requests(int(posts), float(recent), float(every))
        for gid, posts, recent, every in rows
    }


def size_runs(
    order: Sequence[str], keys: Sequence[str], postgres: PostgresResource | None, now: datetime
) -> Sizing:
    """`keys` cut into consecutive runs of about `RUN_BUDGET_REQUESTS` of expected VK work
    (without a store, every group counts as not loaded yet)."""
    note = ""
    try:
        known = group_weights(postgres, keys, now) if postgres is not None else {}
    except Exception as exc:  # any storage trouble: fall back, never skip the refresh
        known = {}
        note = f"stored wall sizes unreadable ({type(exc).__name__}): at most 50 groups a run"
    weights = {k: known.get(k, UNKNOWN_WEIGHT) for k in keys}
    chunks = weighted_chunks(
        order, keys, weights, budget=RUN_BUDGET_REQUESTS, max_keys=MAX_GROUPS_PER_SIZED_RUN
    )
    unknown = sum(1 for k in keys if k not in known)
    return Sizing(chunks, len(keys), round(sum(known.values()), 1), unknown, note)
