import time
from typing import Any

import dagster as dg
import pandas as pd

from vk_pipeline.assets.common import (
    VK_ASSET,
    CrawlConfig,
    Progress,
    group_ids,
    lookback_start,
    preview,
    run_metadata,
    utcnow,
)
from vk_pipeline.assets.groups import groups
from vk_pipeline.assets.rows import POST_COLUMNS, TOMBSTONE_COLUMNS, frame, post_row, tombstone
from vk_pipeline.storage import PostgresResource
from vk_pipeline.vk import VKResource, WallRequest, WallResult, fetch_walls


@dg.asset(
    **VK_ASSET,
    deps=[groups],
    metadata={"partition_expr": "group_id", "write_mode": "upsert"},
)
def posts(
    context: dg.AssetExecutionContext,
    config: CrawlConfig,
    vk: VKResource,
    postgres: PostgresResource,
) -> list[pd.DataFrame]:
    """Wall posts of each group: text, dates, counters, repost source, pinned and deleted flags, raw VK object."""
    started = time.monotonic()
    now = utcnow()
    window = lookback_start(config, now)
    gids = group_ids(context)
    stored = postgres.read_frame(
        "posts",
        columns=["group_id", "id", "date", "is_pinned", "is_deleted"],
        partition_column="group_id",
        partition_values=gids,
    )
    client = vk.get_client()
    client.execute_batch_size = config.batch_size
    progress = Progress(context.log)
    since_by_owner: dict[int, pd.Timestamp | None] = {}
    for gid in gids:
        mine = stored[stored["group_id"] == gid]
        if mine.empty or config.full_listing:
            since_by_owner[-gid] = (
                pd.Timestamp(config.start_date, tz="UTC") if config.start_date else None
            )
        else:
            # A windowed refresh: everything newer than what we hold, and the lookback window.
            live = mine[~mine["is_deleted"].astype(bool)]
            dated = live[~live["is_pinned"].astype(bool)]["date"]
            newest = dated.max() if not dated.empty else mine["date"].max()
            since_by_owner[-gid] = min(newest, pd.Timestamp(window))
    requests = [
        WallRequest(owner, int(since.timestamp()) if since is not None else None)
        for owner, since in since_by_owner.items()
    ]
    rows: list[dict[str, Any]] = []
    tombstones: list[dict[str, Any]] = []
    unreadable: dict[str, str] = {}
    per_group: dict[str, dict[str, Any]] = {}

    def on_page(partial: WallResult) -> None:
        progress.update(
            f"group {-partial.owner_id}: {len(partial.posts):,} / {partial.total or 0:,} posts"
        )

    with client:
        for result in fetch_walls(client, requests, on_page=on_page):
            gid = -result.owner_id
            if result.error is not None:
                unreadable[str(gid)] = result.error.reason
            rows.extend(post_row(p, gid) for p in result.posts)
            mine = stored[(stored["group_id"] == gid) & ~stored["is_deleted"].astype(bool)]
            if result.error is None and not mine.empty:
                # Posts inside the window we just read in full that VK no longer returns are gone.
                since = since_by_owner[result.owner_id]
                scope = mine if since is None else mine[mine["date"] >= since]
                fetched = {p["id"] for p in result.posts}
                tombstones.extend(
                    tombstone((-gid, int(pid)), gid, now)
                    for pid in scope["id"]
                    if int(pid) not in fetched
                )
            per_group[str(gid)] = {
                "posts": len(result.posts),
                "calls": result.cost.calls,
                "requests": round(result.cost.requests, 2),
                **({"unreadable": result.error.reason} if result.error else {}),
            }
            progress.update(f"group {gid}: {len(result.posts):,} posts read", force=True)
    df = frame(rows, POST_COLUMNS)
    context.add_output_metadata(
        run_metadata(
            client.stats,
            started,
            posts_read=len(df),
            tombstoned=len(tombstones),
            unreadable_groups=unreadable,
            per_group=per_group,
            preview=preview(df, ["owner_id", "id", "date", "text", "comments_count"]),
        )
    )
    tomb_df = frame(tombstones, {c: POST_COLUMNS[c] for c in TOMBSTONE_COLUMNS})
    return [df, tomb_df]
