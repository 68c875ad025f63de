from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd

from vk_pipeline.assets.common import (
    VK_ASSET,
    CrawlConfig,
    Progress,
    failing_fast,
    group_ids,
    partition_metadata,
    per_group_table,
    preview,
)
from vk_pipeline.assets.groups import groups
from vk_pipeline.assets.prefetch import Emit
from vk_pipeline.assets.refresh import newest_by_group, newest_of_rows
from vk_pipeline.assets.rows import (
    POST_COLUMNS,
    TOMBSTONE_COLUMNS,
    WALL_LISTING_COLUMNS,
    frame,
    post_row,
    tombstone,
)
from vk_pipeline.assets.stream import CrawlStream
from vk_pipeline.storage import COMMIT, FrameStream, PostgresResource, TableWrite
from vk_pipeline.vk import VKResource, WallRequest, WallResult, fetch_walls

# Posts held in memory at once per wall before they are written and committed.
CHUNK_POSTS = 2_000
# Chunks read ahead of the writer, so the walls are paged on while posts are written.
PREFETCH_CHUNKS = 4
# Walls whose reading ends in one unit at most: what a failure mid-run can cost to list again.
UNIT_WALLS = 100


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
        vk,
        stored,
        dict(zip(listed["group_id"].astype(int), listed["listed_through"], strict=True)),
        gids,
    )
    # With `as_of` (a crawl on another clock, like the emulator's), counter snapshots are timed
    # by it so a post's age at each one is right; otherwise by the database as rows land.
    observed = listing.now if config.as_of else None
    return FrameStream(listing.chunks(), metadata=listing.metadata, observed_at=observed)


class _Listing(CrawlStream):
    """Lists the walls of the run's groups; each wall is committed as soon as it is read."""

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        config: CrawlConfig,
        vk: VKResource,
        stored: pd.DataFrame,
        listed: dict[int, pd.Timestamp | None],
        gids: list[int],
    ) -> None:
        super().__init__(context, config, vk)
        # Split once: per-wall filtering of one frame would cost groups x posts.
        self.stored = {int(gid): df for gid, df in stored.groupby("group_id", sort=False)}
        self.empty = stored.iloc[:0]
        self.newest_stored = newest_by_group(stored)
        self.listed = listed
        self.gids = gids

    def chunks(self) -> Iterator[pd.DataFrame | object]:
        since_by_owner = {-gid: self.policy.list_since(self.listed.get(gid)) for gid in self.gids}
        requests = [
            WallRequest(owner, int(since.timestamp()) if since is not None else None)
            for owner, since in since_by_owner.items()
        ]
        unreadable: dict[str, str] = {}
        per_group: dict[str, dict[str, Any]] = {}
        previews: dict[int, Any] = {}
        totals = {"posts_read": 0, "tombstoned": 0}
        newest: dict[int, pd.Timestamp | None] = dict.fromkeys(self.gids)
        newest.update(self.newest_stored)

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

        # Walls are written in units of about CHUNK_POSTS posts, several small walls to a unit:
        # a refresh of quiet groups is then a few transactions, not a few per group. A wall's
        # tombstones and listing row share the transaction of its last posts.
        rows: list[dict[str, Any]] = []
        tombs: list[dict[str, Any]] = []
        listings: list[dict[str, Any]] = []

        def unit() -> Iterator[pd.DataFrame | object]:
            yield frame(rows, POST_COLUMNS)
            if tombs:
                yield frame(tombs, {c: POST_COLUMNS[c] for c in TOMBSTONE_COLUMNS})
            if listings:
                yield TableWrite("wall_listings", frame(listings, WALL_LISTING_COLUMNS))
            # Committed as read: a later failure keeps them.
            yield COMMIT
            rows.clear(), tombs.clear(), listings.clear()

        try:
            with (
                failing_fast(),
                self.fetching(produce, PREFETCH_CHUNKS, "vk-walls-prefetch") as items,
            ):
                for result in items:
                    if isinstance(result, str):
                        self.context.log.info(result)
                        continue
                    gid = -result.owner_id
                    read = [post_row(p, gid) for p in result.posts]
                    rows.extend(read)
                    totals["posts_read"] += len(read)
                    newest[gid] = newest_of_rows(newest[gid], read)
                    if read and gid not in previews:
                        # Each partition's own rows, not the unit's.
                        previews[gid] = preview(
                            read, ["owner_id", "id", "date", "text", "comments_count"]
                        )
                    if result.final:
                        if result.error is not None:
                            unreadable[str(gid)] = result.error.reason
                        wall_tombs = self._tombstones(result, since_by_owner[result.owner_id])
                        tombs.extend(wall_tombs)
                        totals["tombstoned"] += len(wall_tombs)
                        per_group[str(gid)] = {
                            "posts": result.read,
                            "calls": result.cost.calls,
                            "requests": round(result.cost.requests, 2),
                            **({"unreadable": result.error.reason} if result.error else {}),
                        }
                        self.progress.update(f"group {gid}: {result.read:,} posts read", force=True)
                        if result.error is None:
                            # With the wall's last posts: a listing cut off before it never
                            # counts as complete, so the next run reaches back past it.
                            listings.append(self._listed(gid, newest[gid]))
                    if len(rows) >= CHUNK_POSTS or (result.final and len(listings) >= UNIT_WALLS):
                        yield from unit()
                if rows or tombs or listings:
                    yield from unit()
        finally:
            self.finish(
                **totals, unreadable_groups=unreadable, per_group=per_group_table(per_group)
            )
            partition_metadata(
                self.context,
                {
                    gid: {
                        **per_group.get(str(gid), {}),
                        **({"preview": previews[gid]} if gid in previews else {}),
                    }
                    for gid in self.gids
                },
            )

    def _listed(self, gid: int, through: pd.Timestamp | None) -> dict[str, Any]:
        return {"group_id": gid, "listed_at": self.now, "listed_through": through}

    def _tombstones(self, result: WallResult, since: pd.Timestamp | None) -> list[dict[str, Any]]:
        """Posts inside the part just read in full that VK no longer returns are gone."""
        if result.error is not None:
            return []
        gid = -result.owner_id
        mine = self.stored.get(gid, self.empty)
        return [
            tombstone((-gid, pid), gid, self.now)
            for pid in self.policy.vanished(mine, result.ids, since)
        ]
