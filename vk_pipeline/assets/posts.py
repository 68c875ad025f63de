import time
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime
from typing import Any

import dagster as dg
import pandas as pd

from vk_pipeline.assets.common import (
    VK_ASSET,
    CrawlConfig,
    Progress,
    failing_fast,
    group_ids,
    lookback_start,
    preview,
    run_metadata,
)
from vk_pipeline.assets.groups import groups
from vk_pipeline.assets.prefetch import Emit, prefetched
from vk_pipeline.assets.rows import (
    POST_COLUMNS,
    TOMBSTONE_COLUMNS,
    WALL_LISTING_COLUMNS,
    frame,
    post_row,
    tombstone,
)
from vk_pipeline.storage import COMMIT, FrameStream, PostgresResource, TableWrite
from vk_pipeline.vk import VKClient, VKResource, WallRequest, WallResult, fetch_walls

# Posts held in memory at once per wall before they are written and committed.
CHUNK_POSTS = 2_000
# Chunks read ahead of the writer, so the walls are paged on while posts are written.
PREFETCH_CHUNKS = 4


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
) -> FrameStream:
    """Wall posts of each group: text, dates, counters, repost source, pinned and deleted flags, raw VK object."""
    gids = group_ids(context)
    stored = postgres.read_frame(
        "posts",
        columns=["group_id", "id", "date", "is_pinned", "is_deleted"],
        partition_column="group_id",
        partition_values=gids,
    )
    listed = postgres.read_frame(
        "wall_listings",
        columns=["group_id", "listed_through"],
        partition_column="group_id",
        partition_values=gids,
    )
    listing = _Listing(
        context,
        config,
        vk.get_client(warn=context.log.warning),
        stored,
        dict(zip(listed["group_id"].astype(int), listed["listed_through"], strict=True)),
        gids,
    )
    return FrameStream(listing.chunks(), metadata=listing.metadata)


class _Listing:
    """Lists the walls of the run's groups; each wall is committed as soon as it is read."""

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        config: CrawlConfig,
        client: VKClient,
        stored: pd.DataFrame,
        listed: dict[int, pd.Timestamp | None],
        gids: list[int],
    ) -> None:
        self.context = context
        self.config = config
        self.client = client
        self.client.execute_batch_size = config.batch_size
        self.stored = stored
        self.listed = listed
        self.gids = gids
        self.now = config.now()
        self.metadata: dict[str, Any] = {}
        self.progress = Progress(context.log.info)

    def since_by_owner(self) -> dict[int, pd.Timestamp | None]:
        window = pd.Timestamp(lookback_start(self.config, self.now))
        start = pd.Timestamp(self.config.start_date, tz="UTC") if self.config.start_date else None
        since: dict[int, pd.Timestamp | None] = {}
        for gid in self.gids:
            through = self.listed.get(gid)
            if through is None or pd.isna(through) or self.config.full_listing:
                # Never listed to the end (a first load, or one cut off mid-wall): all of it.
                since[-gid] = start
            else:
                # A windowed refresh: everything since the last complete listing, and the window.
                since[-gid] = min(through, window)
        return since

    def chunks(self) -> Iterator[pd.DataFrame | object]:
        started = time.monotonic()
        since_by_owner = self.since_by_owner()
        requests = [
            WallRequest(owner, int(since.timestamp()) if since is not None else None)
            for owner, since in since_by_owner.items()
        ]
        unreadable: dict[str, str] = {}
        per_group: dict[str, dict[str, Any]] = {}
        totals = {"posts_read": 0, "tombstoned": 0}
        newest = {
            gid: _newest(None, self.stored[self.stored["group_id"] == gid]) for gid in self.gids
        }

        def produce(emit: Emit[WallResult | str]) -> None:
            # Logged by the caller: Dagster's log handler is not safe to call from this thread.
            pages = Progress(emit)

            def on_page(partial: WallResult) -> None:
                pages.update(
                    f"group {-partial.owner_id}: {partial.read:,} / {partial.total or 0:,} posts"
                )

            walls = fetch_walls(self.client, requests, on_page=on_page, chunk_posts=CHUNK_POSTS)
            for result in walls:
                emit(result)

        try:
            with (
                failing_fast(),
                self.client,
                closing(prefetched(produce, PREFETCH_CHUNKS, "vk-walls-prefetch")) as items,
            ):
                for result in items:
                    if isinstance(result, str):
                        self.context.log.info(result)
                        continue
                    gid = -result.owner_id
                    df = frame((post_row(p, gid) for p in result.posts), POST_COLUMNS)
                    totals["posts_read"] += len(df)
                    newest[gid] = _newest(newest[gid], df)
                    self.metadata.setdefault(
                        "preview", preview(df, ["owner_id", "id", "date", "text", "comments_count"])
                    )
                    yield df
                    if result.final:
                        if result.error is not None:
                            unreadable[str(gid)] = result.error.reason
                        tombs = self._tombstones(result, since_by_owner[result.owner_id], self.now)
                        totals["tombstoned"] += len(tombs)
                        per_group[str(gid)] = {
                            "posts": result.read,
                            "calls": result.cost.calls,
                            "requests": round(result.cost.requests, 2),
                            **({"unreadable": result.error.reason} if result.error else {}),
                        }
                        self.progress.update(f"group {gid}: {result.read:,} posts read", force=True)
                        yield frame(tombs, {c: POST_COLUMNS[c] for c in TOMBSTONE_COLUMNS})
                        if result.error is None:
                            # With the wall's last posts: a listing cut off before it never
                            # counts as complete, so the next run reaches back past it.
                            yield TableWrite("wall_listings", self._listed(gid, newest[gid]))
                    # Posts are committed as they are read (a wall's tombstones once it is read
                    # in full): a later failure keeps them.
                    yield COMMIT
        finally:
            self.metadata.update(
                run_metadata(
                    self.client.stats,
                    started,
                    **totals,
                    unreadable_groups=unreadable,
                    per_group=per_group,
                )
            )

    def _listed(self, gid: int, through: pd.Timestamp | None) -> pd.DataFrame:
        row = {"group_id": gid, "listed_at": self.now, "listed_through": through}
        return frame([row], WALL_LISTING_COLUMNS)

    def _tombstones(
        self, result: WallResult, since: pd.Timestamp | None, now: datetime
    ) -> list[dict[str, Any]]:
        """Posts inside the window just read in full that VK no longer returns are gone."""
        gid = -result.owner_id
        mine = self.stored[
            (self.stored["group_id"] == gid) & ~self.stored["is_deleted"].astype(bool)
        ]
        if result.error is not None or mine.empty:
            return []
        scope = mine if since is None else mine[mine["date"] >= since]
        return [
            tombstone((-gid, int(pid)), gid, now)
            for pid in scope["id"]
            if int(pid) not in result.ids
        ]


def _newest(known: pd.Timestamp | None, posts: pd.DataFrame) -> pd.Timestamp | None:
    """The newest date of live posts, pinned ones aside (a pinned post may be years old)."""
    dated = posts.loc[
        ~posts["is_pinned"].fillna(False).astype(bool)
        & ~posts["is_deleted"].fillna(False).astype(bool),
        "date",
    ]
    if dated.empty:
        return known
    return dated.max() if known is None else max(known, dated.max())
