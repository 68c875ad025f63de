from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pandas as pd

from vk_pipeline.assets.common import (
    VK_ASSET,
    CrawlConfig,
    failing_fast,
    group_ids,
    partition_metadata,
    per_group_table,
    preview,
)
from vk_pipeline.assets.prefetch import Emit
from vk_pipeline.assets.refresh import POST_DELETED, deleted_not_settled, never_synced_empty
from vk_pipeline.assets.rows import (
    COMMENT_COLUMNS,
    COMMENT_TOMBSTONE_COLUMNS,
    POST_SYNC_COLUMNS,
    comment_row,
    frame,
    tombstone,
)
from vk_pipeline.assets.stream import CrawlStream
from vk_pipeline.storage import COMMIT, FrameStream, PostgresResource, TableWrite
from vk_pipeline.vk import (
    CommentsResult,
    Cost,
    PostRef,
    VKResource,
    fetch_comments,
)

# A commit unit closes once it holds this many comments (and whenever a group is done): what a
# kill loses, and what the run holds in memory besides the posts in flight.
UNIT_COMMENTS = 5_000
# ... or this many posts, whichever comes first (posts without comments still carry a sync row).
UNIT_POSTS = 2_000
# Results fetched ahead of the writer: the crawl goes on while a unit is written to Postgres.
PREFETCH_POSTS = 200
POST_INPUT_COLUMNS = [
    "group_id",
    "owner_id",
    "id",
    "date",
    "comments_count",
    "comments_can_post",
    "comments_synced_count",
    "comments_synced_at",
    "comments_status",
    "is_deleted",
]
STORED_COLUMNS = ["owner_id", "post_id", "id", "is_deleted"]


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
    crawl = _Crawl(context, config, vk, postgres, posts)
    return FrameStream(crawl.chunks(), metadata=crawl.metadata)


@dataclass
class _GroupTally:
    posts_to_crawl: int = 0
    posts_crawled: int = 0
    comments_read: int = 0
    tombstoned: int = 0
    posts_closed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    cost: Cost = field(default_factory=Cost)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "posts_to_crawl": self.posts_to_crawl,
            "posts_crawled": self.posts_crawled,
            "comments_read": self.comments_read,
            "tombstoned": self.tombstoned,
            "posts_closed": self.posts_closed,
            "reasons": self.reasons,
            "calls": self.cost.calls,
            "requests": round(self.cost.requests, 2),
        }


class _Crawl(CrawlStream):
    """Streams commit units of comments for all groups of the run; fills `metadata` as it goes.

    Posts of every group go into one `fetch_comments` stream so packs stay full across group
    boundaries. The crawl runs in a thread a bounded queue ahead of the writer, so requests keep
    flowing while a unit is written. A unit holds complete posts only and carries their sync
    state, so a post is never marked synced without its comments, and a rerun after a failure or
    a kill crawls only the posts not yet synced.
    """

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        config: CrawlConfig,
        vk: VKResource,
        postgres: PostgresResource,
        posts: pd.DataFrame,
    ) -> None:
        super().__init__(context, config, vk)
        self.postgres = postgres
        self.posts = posts
        self.tally: dict[int, _GroupTally] = {}
        self.unreadable: dict[str, str] = {}
        self.previews: dict[int, Any] = {}

    def chunks(self) -> Iterator[pd.DataFrame | TableWrite | object]:
        gids = group_ids(self.context)
        self.tally = {gid: _GroupTally() for gid in gids}
        todo: list[PostRef] = []
        vk_count: dict[PostRef, Any] = {}
        syncs: list[dict[str, Any]] = []
        gone: list[PostRef] = []
        # Decided over the run's posts at once (the policy is vectorised): per-group filtering
        # would cost groups x posts before the first request.
        posts = self.posts[self.posts["group_id"].isin(gids)]
        for gid, pid in _keys(never_synced_empty(posts)):
            syncs.append(self._sync(PostRef(-gid, pid), 0, "ok", None))
        gone.extend(PostRef(-gid, pid) for gid, pid in _keys(deleted_not_settled(posts)))
        crawl = self.policy.posts_to_crawl(posts)
        order = {gid: i for i, gid in enumerate(gids)}
        crawl = crawl.iloc[
            crawl["group_id"].map(order).to_numpy().argsort(kind="stable")
        ]  # group by group, in the run's order, posts in stored order
        refs = [PostRef(-gid, pid) for gid, pid in _keys(crawl)]
        vk_count.update(zip(refs, crawl["comments_count"], strict=True))
        todo.extend(refs)
        for (gid, reason), n in crawl.groupby(["group_id", "reason"]).size().items():
            tally = self.tally[int(gid)]
            tally.posts_to_crawl += int(n)
            tally.reasons[str(reason)] = int(n)
        yield from self._orphans_of_deleted_posts(gone, syncs)
        try:
            yield from self._crawl(todo, vk_count)
        finally:
            self.finish(
                **{
                    k: sum(getattr(t, k) for t in self.tally.values())
                    for k in ("posts_to_crawl", "posts_crawled", "comments_read", "tombstoned")
                },
                per_group=per_group_table(
                    {str(gid): t.as_metadata() for gid, t in self.tally.items()}
                ),
                unreadable_posts=dict(list(self.unreadable.items())[:50]),
            )
            partition_metadata(
                self.context,
                {
                    gid: {
                        **t.as_metadata(),
                        **({"preview": self.previews[gid]} if gid in self.previews else {}),
                    }
                    for gid, t in self.tally.items()
                },
            )

    # -- the crawl, a unit at a time -------------------------------------------------------------

    def _crawl(
        self, todo: list[PostRef], vk_count: dict[PostRef, Any]
    ) -> Iterator[pd.DataFrame | TableWrite | object]:
        left = {gid: t.posts_to_crawl for gid, t in self.tally.items()}

        def produce(emit: Emit[CommentsResult]) -> None:
            for result in fetch_comments(self.client, todo, threads=self.config.threads):
                emit(result)

        unit: list[CommentsResult] = []
        unit_comments = 0
        done = 0
        # The prefetch closes (its thread joined) before the client it sends with.
        with self.fetching(produce, PREFETCH_POSTS, "vk-comments-prefetch") as results:
            while True:
                try:
                    item = next(results)
                except StopIteration:
                    break
                except Exception as error:
                    # The posts finished before the failure are kept; the rerun starts after them.
                    yield from self._write_unit(unit, vk_count)
                    with failing_fast():
                        raise error
                gid = -item.post.owner_id
                tally = self.tally[gid]
                tally.posts_crawled += 1
                tally.comments_read += len(item.comments)
                unit.append(item)
                unit_comments += len(item.comments)
                done += 1
                left[gid] -= 1
                self._report(gid, left[gid], done, len(todo))
                # A unit spans groups: a refresh of quiet groups is a few transactions, not
                # one per group. It holds whole posts only, so nothing is marked synced early.
                if unit_comments >= UNIT_COMMENTS or len(unit) >= UNIT_POSTS:
                    yield from self._write_unit(unit, vk_count)
                    unit, unit_comments = [], 0
            yield from self._write_unit(unit, vk_count)

    def _report(self, gid: int, left: int, done: int, total: int) -> None:
        tally = self.tally[gid]
        if left == 0:
            self.progress.update(
                f"group {gid}: {tally.posts_crawled:,} posts crawled, "
                f"{tally.comments_read:,} comments",
                force=True,
            )
        else:
            self.progress.update(
                f"group {gid}: {tally.posts_to_crawl - left:,} / {tally.posts_to_crawl:,} posts, "
                f"{tally.comments_read:,} comments ({done:,} / {total:,} posts in this run)"
            )

    def _write_unit(
        self, unit: list[CommentsResult], vk_count: dict[PostRef, Any]
    ) -> Iterator[pd.DataFrame | TableWrite | object]:
        """Rows, tombstones and sync state of complete posts, then a commit."""
        if not unit:
            return
        stored = self._stored_comments([r.post for r in unit if r.error is None])
        rows: list[dict[str, Any]] = []
        tombs: list[dict[str, Any]] = []
        syncs: list[dict[str, Any]] = []
        for result in unit:
            gid = -result.post.owner_id
            tally = self.tally[gid]
            tally.cost.calls += result.cost.calls
            tally.cost.requests += result.cost.requests
            count = vk_count[result.post]
            if result.error is not None:
                status = "closed" if result.error.code == 212 else "error"
                tally.posts_closed += status == "closed"
                self.unreadable[f"{gid}_{result.post.post_id}"] = result.error.reason
                syncs.append(self._sync(result.post, count, status, result.error.code))
                continue
            known = stored.get(result.post, {})
            live_ids: set[int] = set()
            for c in result.comments:
                if c.get("deleted"):
                    # VK keeps a stub for a deleted comment that has replies; its content is
                    # gone, so stored content stays and only the flag moves.
                    if c["id"] not in known:
                        row = comment_row(c, result.post.owner_id, result.post.post_id, gid)
                        rows.append({**row, "is_deleted": True, "deleted_seen_at": self.now})
                        tally.tombstoned += 1
                    elif known[c["id"]] is False:
                        tombs.append(self._tombstone(result.post, c["id"]))
                        tally.tombstoned += 1
                    continue
                live_ids.add(c["id"])
                rows.append(comment_row(c, result.post.owner_id, result.post.post_id, gid))
            vanished = [cid for cid, dead in known.items() if not dead and cid not in live_ids]
            tombs.extend(self._tombstone(result.post, cid) for cid in vanished)
            tally.tombstoned += len(vanished)
            syncs.append(self._sync(result.post, count, "ok", None))
        if rows:
            # Each group's first rows of the unit, from the row dicts (a mask over the unit's
            # frame per group cost pandas milliseconds each).
            first: dict[int, list[dict[str, Any]]] = {}
            for row in rows:
                gid = int(row["group_id"])
                if gid not in self.previews and len(shown := first.setdefault(gid, [])) < 5:
                    shown.append(row)
            for gid, shown in first.items():
                self.previews[gid] = preview(
                    shown, ["owner_id", "post_id", "id", "from_id", "date", "text"]
                )
            yield frame(rows, COMMENT_COLUMNS)
        if tombs:
            yield frame(tombs, {c: COMMENT_COLUMNS[c] for c in COMMENT_TOMBSTONE_COLUMNS})
        # In the same transaction as the comments: a post is never marked synced with comments
        # that did not land.
        yield TableWrite("posts", frame(syncs, POST_SYNC_COLUMNS))
        yield COMMIT

    # -- state read from Postgres, bounded by a unit ---------------------------------------------

    def _stored_comments(self, refs: list[PostRef]) -> dict[PostRef, dict[int, bool]]:
        """post → {comment id → is_deleted} of what the table holds for these posts only."""
        if not refs:
            return {}
        df = self.postgres.read_frame(
            "comments",
            columns=STORED_COLUMNS,
            where={
                "owner_id": sorted({r.owner_id for r in refs}),
                "post_id": sorted({r.post_id for r in refs}),
            },
        )
        wanted = set(refs)
        stored: dict[PostRef, dict[int, bool]] = {}
        for owner, post_id, cid, deleted in df.itertuples(index=False):
            ref = PostRef(int(owner), int(post_id))
            if ref in wanted:
                stored.setdefault(ref, {})[int(cid)] = bool(deleted)
        return stored

    def _orphans_of_deleted_posts(
        self, gone: list[PostRef], syncs: list[dict[str, Any]]
    ) -> Iterator[pd.DataFrame | TableWrite | object]:
        """A post that left VK took its comments with it: flag the ones still stored as live."""
        tombs: list[dict[str, Any]] = []
        for ref, comments in self._stored_comments(gone).items():
            live = [cid for cid, deleted in comments.items() if not deleted]
            tombs.extend(self._tombstone(ref, cid) for cid in live)
            self.tally[-ref.owner_id].tombstoned += len(live)
        syncs.extend(self._sync(ref, None, POST_DELETED, None) for ref in gone)
        if tombs:
            yield frame(tombs, {c: COMMENT_COLUMNS[c] for c in COMMENT_TOMBSTONE_COLUMNS})
        if syncs:
            yield TableWrite("posts", frame(syncs, POST_SYNC_COLUMNS))
            yield COMMIT

    def _tombstone(self, ref: PostRef, cid: int) -> dict[str, Any]:
        return tombstone((ref.owner_id, cid), -ref.owner_id, self.now, post_id=ref.post_id)

    def _sync(self, ref: PostRef, count: Any, status: str, code: int | None) -> dict[str, Any]:
        return {
            "owner_id": ref.owner_id,
            "id": ref.post_id,
            "comments_synced_count": None if pd.isna(count) else int(count),
            "comments_synced_at": self.now,
            "comments_status": status,
            "comments_error_code": code,
        }


def _keys(posts: pd.DataFrame) -> Iterator[tuple[int, int]]:
    """(group id, post id) of each row."""
    for gid, pid in zip(posts["group_id"], posts["id"], strict=True):
        yield int(gid), int(pid)
