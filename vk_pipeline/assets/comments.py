import time
from collections.abc import Iterator
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
from vk_pipeline.assets.rows import (
    COMMENT_COLUMNS,
    COMMENT_TOMBSTONE_COLUMNS,
    POST_SYNC_COLUMNS,
    comment_row,
    frame,
    tombstone,
)
from vk_pipeline.storage import FrameStream, PostgresResource, TableWrite
from vk_pipeline.vk import CommentsResult, Cost, PostRef, VKClient, VKResource, fetch_comments

CHUNK_ROWS = 20_000
POST_INPUT_COLUMNS = [
    "group_id",
    "owner_id",
    "id",
    "date",
    "comments_count",
    "comments_can_post",
    "comments_synced_count",
    "comments_status",
    "is_deleted",
]
POST_DELETED = "post_deleted"


def posts_to_crawl(posts: pd.DataFrame, window: pd.Timestamp) -> pd.DataFrame:
    """Posts whose comments must be read: the count moved since the last sync, or the post is recent.

    A post whose VK count still equals the count at its last sync costs nothing; recent posts are
    re-read in full anyway because an edit or a delete-plus-new-comment leaves the count unchanged.
    """
    live = posts[~posts["is_deleted"].astype(bool)]
    count = live["comments_count"].fillna(0)
    synced = live["comments_synced_count"]
    changed = synced.isna() | (count != synced.fillna(-1))
    has_any = (count > 0) | (synced.fillna(0) > 0)
    # VK shows closed comments as a count of 0 and can_post 0: one call tells closed (212) from
    # merely empty, once, when the post is first seen.
    maybe_closed = synced.isna() & ~live["comments_can_post"].fillna(True).astype(bool)
    recent = live["date"] >= window
    return live[((changed | recent) & has_any) | maybe_closed]


@dg.asset(
    **VK_ASSET,
    ins={"posts": dg.AssetIn(metadata={"columns": POST_INPUT_COLUMNS})},
    metadata={"partition_expr": "group_id", "write_mode": "upsert"},
)
def comments(
    context: dg.AssetExecutionContext,
    config: CrawlConfig,
    vk: VKResource,
    postgres: PostgresResource,
    posts: pd.DataFrame,
) -> FrameStream:
    """Every comment and thread reply under the groups' posts, deleted ones kept as tombstones."""
    crawl = _Crawl(context, config, vk.get_client(), postgres, posts)
    return FrameStream(crawl.chunks(), metadata=crawl.metadata)


class _Crawl:
    """Streams comment chunks for all groups of the run; fills `metadata` as it goes.

    Posts of every group go into one `fetch_comments` stream so packs stay full across group
    boundaries; each group's share of the requests is summed from the per-post costs.
    """

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        config: CrawlConfig,
        client: VKClient,
        postgres: PostgresResource,
        posts: pd.DataFrame,
    ) -> None:
        self.context = context
        self.config = config
        self.client = client
        self.client.execute_batch_size = config.batch_size
        self.postgres = postgres
        self.posts = posts
        self.now = utcnow()
        self.window = pd.Timestamp(lookback_start(config, self.now))
        self.metadata: dict[str, Any] = {}
        self.progress = Progress(context.log)
        self._rows: list[dict[str, Any]] = []
        self._tombs: list[dict[str, Any]] = []
        self._syncs: list[dict[str, Any]] = []
        self._stored: dict[int, dict[int, dict[int, bool]]] = {}

    def chunks(self) -> Iterator[pd.DataFrame | TableWrite]:
        started = time.monotonic()
        gids = group_ids(self.context)
        per_group = {
            gid: {"posts_crawled": 0, "comments_read": 0, "tombstoned": 0, "posts_closed": 0}
            for gid in gids
        }
        cost = {gid: Cost() for gid in gids}
        left: dict[int, int] = {}
        unreadable: dict[str, str] = {}
        todo: list[PostRef] = []
        vk_count: dict[PostRef, Any] = {}
        for gid in gids:
            mine = self.posts[self.posts["group_id"] == gid]
            self._mark_empty_posts_synced(gid, mine)
            per_group[gid]["tombstoned"] += self._tombstone_comments_of_deleted_posts(gid, mine)
            crawl = posts_to_crawl(mine, self.window)
            refs = [PostRef(-gid, int(pid)) for pid in crawl["id"]]
            vk_count.update(zip(refs, crawl["comments_count"], strict=True))
            todo.extend(refs)
            left[gid] = len(refs)
            per_group[gid]["posts_crawled"] = len(refs)
            if not refs:
                self._stored.pop(gid, None)
        with self.client:
            for done, result in enumerate(
                fetch_comments(self.client, todo, threads=self.config.threads), 1
            ):
                gid = -result.post.owner_id
                counts = per_group[gid]
                cost[gid].calls += result.cost.calls
                cost[gid].requests += result.cost.requests
                self._absorb(gid, result, vk_count[result.post], counts, unreadable)
                left[gid] -= 1
                if left[gid] == 0:
                    self._stored.pop(gid, None)
                    self.progress.update(
                        f"group {gid}: {counts['posts_crawled']:,} posts crawled, "
                        f"{counts['comments_read']:,} comments",
                        force=True,
                    )
                else:
                    self.progress.update(
                        f"group {gid}: {counts['posts_crawled'] - left[gid]:,} / "
                        f"{counts['posts_crawled']:,} posts, {counts['comments_read']:,} comments"
                        f" ({done:,} / {len(todo):,} posts in this run)"
                    )
                yield from self._flush(force=False)
        yield from self._flush(force=True)
        totals = {
            k: sum(g[k] for g in per_group.values()) for k in next(iter(per_group.values()), {})
        }
        self.metadata.update(
            run_metadata(
                self.client.stats,
                started,
                **totals,
                per_group={
                    str(gid): {
                        **per_group[gid],
                        "calls": cost[gid].calls,
                        "requests": round(cost[gid].requests, 2),
                    }
                    for gid in gids
                },
                unreadable_posts=dict(list(unreadable.items())[:50]),
            )
        )

    def _mark_empty_posts_synced(self, gid: int, posts: pd.DataFrame) -> None:
        """Posts never synced that VK says have no comments: nothing to ask, just mark them."""
        never = posts[
            posts["comments_synced_count"].isna()
            & (posts["comments_count"].fillna(0) == 0)
            & posts["comments_can_post"].fillna(True).astype(bool)
            & ~posts["is_deleted"].astype(bool)
        ]
        self._syncs.extend(self._sync(-gid, int(pid), 0, "ok", None) for pid in never["id"])

    def _tombstone_comments_of_deleted_posts(self, gid: int, posts: pd.DataFrame) -> int:
        """A post that left VK took its comments with it: flag the ones still stored as live."""
        gone = posts[posts["is_deleted"].astype(bool) & (posts["comments_status"] != POST_DELETED)]
        if gone.empty:
            return 0
        stored = self._stored_comments(gid)
        n = 0
        for pid in map(int, gone["id"]):
            live = [cid for cid, deleted in stored.get(pid, {}).items() if not deleted]
            self._tombs.extend(tombstone((-gid, cid), gid, self.now, post_id=pid) for cid in live)
            self._syncs.append(self._sync(-gid, pid, None, POST_DELETED, None))
            n += len(live)
        return n

    def _absorb(
        self,
        gid: int,
        result: CommentsResult,
        vk_count: Any,
        counts: dict[str, int],
        unreadable: dict[str, str],
    ) -> None:
        pid = result.post.post_id
        if result.error is not None:
            status = "closed" if result.error.code == 212 else "error"
            counts["posts_closed"] += status == "closed"
            unreadable[f"{-gid}_{pid}"] = result.error.reason
            self._syncs.append(self._sync(-gid, pid, vk_count, status, result.error.code))
            return
        known = self._stored_comments(gid).get(pid, {})
        live_ids: set[int] = set()
        for c in result.comments:
            if c.get("deleted"):
                # VK keeps a stub for a deleted comment that has replies; its content is gone,
                # so the stored content stays and only the flag moves.
                if known.get(c["id"]) is not True:
                    self._tombs.append(tombstone((-gid, c["id"]), gid, self.now, post_id=pid))
                    counts["tombstoned"] += 1
                continue
            live_ids.add(c["id"])
            self._rows.append(comment_row(c, -gid, pid, gid))
        vanished = [cid for cid, deleted in known.items() if not deleted and cid not in live_ids]
        self._tombs.extend(tombstone((-gid, cid), gid, self.now, post_id=pid) for cid in vanished)
        counts["comments_read"] += len(result.comments)
        counts["tombstoned"] += len(vanished)
        self._syncs.append(self._sync(-gid, pid, vk_count, "ok", None))

    def _flush(self, *, force: bool) -> Iterator[pd.DataFrame | TableWrite]:
        if self._rows and (force or len(self._rows) >= CHUNK_ROWS):
            chunk = frame(self._rows, COMMENT_COLUMNS)
            self.metadata.setdefault(
                "preview", preview(chunk, ["owner_id", "post_id", "id", "from_id", "date", "text"])
            )
            yield chunk
            self._rows = []
        if self._tombs and (force or len(self._tombs) >= CHUNK_ROWS):
            yield frame(self._tombs, {c: COMMENT_COLUMNS[c] for c in COMMENT_TOMBSTONE_COLUMNS})
            self._tombs = []
        if self._syncs and (force or len(self._syncs) >= CHUNK_ROWS):
            # Written in the same transaction as the comments, so a post is never marked synced
            # with comments that did not land.
            yield TableWrite("posts", frame(self._syncs, POST_SYNC_COLUMNS))
            self._syncs = []

    def _stored_comments(self, gid: int) -> dict[int, dict[int, bool]]:
        """post id → {comment id → is_deleted} of what the table holds for a group, read once."""
        if gid not in self._stored:
            df = self.postgres.read_frame(
                "comments",
                columns=["post_id", "id", "is_deleted"],
                partition_column="group_id",
                partition_values=[gid],
            )
            stored: dict[int, dict[int, bool]] = {}
            for post_id, cid, deleted in df.itertuples(index=False):
                stored.setdefault(int(post_id), {})[int(cid)] = bool(deleted)
            self._stored[gid] = stored
        return self._stored[gid]

    def _sync(
        self, owner_id: int, post_id: int, count: Any, status: str, code: int | None
    ) -> dict[str, Any]:
        return {
            "owner_id": owner_id,
            "id": post_id,
            "comments_synced_count": None if pd.isna(count) else int(count),
            "comments_synced_at": self.now,
            "comments_status": status,
            "comments_error_code": code,
        }
