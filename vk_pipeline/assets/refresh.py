"""The refresh policy: how far back a wall is listed, and whose comments a run re-reads.

Dagster-free on purpose: it decides from stored rows and the run's clock only, and is tested on
its own (`vk_pipeline_tests/assets/test_refresh.py`). The assets ask it, then talk to VK.

- A wall is listed in full on its first load, after a listing that was cut off, and whenever
  `full_listing` is on; otherwise down to its last complete listing or the lookback window,
  whichever is older.
- A post's comments are read when VK's count moved since the last sync (`changed`), when the post
  is inside the lookback window (`recent`), when its verification cycle turned (`stale`: VK's
  count does not move on edits, nor on deleting a comment that still has replies), and once when
  VK shows none and closed commenting (`probe`: tells closed, error 212, from empty). Posts
  verified within `fresh_hours` are not re-read for the window or the cycle, so a rerun resumes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

# `comments_status` of a post that left VK: its comments were flagged deleted with it.
POST_DELETED = "post_deleted"


@dataclass(frozen=True)
class RefreshPolicy:
    now: datetime
    lookback_days: float = 3.0
    verify_days: float = 7.0
    fresh_hours: float = 12.0
    start_date: date | None = None
    full_listing: bool = True

    # -- walls -----------------------------------------------------------------------------------

    def lookback_start(self) -> datetime:
        return self.now - timedelta(days=self.lookback_days)

    def list_since(self, listed_through: pd.Timestamp | None) -> pd.Timestamp | None:
        """How far back to list a wall whose last complete listing reached `listed_through`
        (None: never listed to its end); None lists it whole (down to `start_date`)."""
        start = pd.Timestamp(self.start_date, tz="UTC") if self.start_date else None
        if listed_through is None or pd.isna(listed_through) or self.full_listing:
            return start
        # A windowed refresh: everything since the last complete listing, and the window.
        return min(listed_through, pd.Timestamp(self.lookback_start()))

    def vanished(self, stored: pd.DataFrame, read_ids: set[int], since: pd.Timestamp | None):
        """Ids of live stored posts of one wall, inside the part just listed in full, that VK
        no longer returned: they are gone."""
        live = stored[~stored["is_deleted"].astype(bool)]
        scope = live if since is None else live[live["date"] >= since]
        return [int(pid) for pid in scope["id"] if int(pid) not in read_ids]

    # -- comments --------------------------------------------------------------------------------

    def due_for_verification(self, posts: pd.DataFrame) -> pd.Series:
        """Posts whose verification cycle turned since their last sync.

        Each post has a fixed phase in a cycle of `verify_days`; it is due once the cycle has
        passed its phase since it was last verified. So every post is re-read within
        `verify_days` of its last sync, and because phases are spread evenly, about
        1/verify_days of the posts fall due each day instead of all of them on the same day a
        week after the first load.
        """
        synced = posts["comments_synced_at"]
        if posts.empty:
            return pd.Series(False, index=posts.index)
        period = self.verify_days * 86_400.0
        phase = _phase_seconds(posts["owner_id"], posts["id"], period)
        epoch = pd.Timestamp(0, tz="UTC")
        synced_s = ((synced - epoch) / pd.Timedelta(seconds=1)).to_numpy(
            dtype=np.float64, na_value=0
        )
        now_s = self.now.timestamp()
        turned = np.floor((now_s - phase) / period) > np.floor((synced_s - phase) / period)
        return pd.Series(turned, index=posts.index) & synced.notna()

    def posts_to_crawl(self, posts: pd.DataFrame) -> pd.DataFrame:
        """Posts whose comments must be read, with the reason in a `reason` column
        (`changed`, `recent`, `stale`, `probe`; the first that applies, in that order)."""
        live = posts[~posts["is_deleted"].astype(bool)]
        count = live["comments_count"].fillna(0)
        synced = live["comments_synced_count"]
        changed = synced.isna() | (count != synced.fillna(-1))
        has_any = (count > 0) | (synced.fillna(0) > 0)
        maybe_closed = synced.isna() & ~live["comments_can_post"].fillna(True).astype(bool)
        fresh_since = pd.Timestamp(self.now - timedelta(hours=self.fresh_hours))
        fresh = live["comments_synced_at"].notna() & (live["comments_synced_at"] >= fresh_since)
        recent = (live["date"] >= pd.Timestamp(self.lookback_start())) & ~fresh
        stale = self.due_for_verification(live) & ~fresh
        reason = pd.Series(None, index=live.index, dtype=object)
        reason[maybe_closed] = "probe"
        reason[stale & has_any] = "stale"
        reason[recent & has_any] = "recent"
        reason[changed & has_any] = "changed"
        out = live[reason.notna()].copy()
        out["reason"] = reason[reason.notna()]
        return out


def never_synced_empty(posts: pd.DataFrame) -> pd.DataFrame:
    """Posts never synced that VK says have no comments and are open: nothing to ask VK, they
    are marked synced as they are."""
    return posts[
        posts["comments_synced_count"].isna()
        & (posts["comments_count"].fillna(0) == 0)
        & posts["comments_can_post"].fillna(True).astype(bool)
        & ~posts["is_deleted"].astype(bool)
    ]


def deleted_not_settled(posts: pd.DataFrame) -> pd.DataFrame:
    """Posts that left VK whose comments were not yet flagged deleted with them."""
    return posts[posts["is_deleted"].astype(bool) & (posts["comments_status"] != POST_DELETED)]


def newest_post(known: pd.Timestamp | None, posts: pd.DataFrame) -> pd.Timestamp | None:
    """The newest date of live posts, pinned ones aside (a pinned post may be years old)."""
    dated = posts.loc[
        ~posts["is_pinned"].fillna(False).astype(bool)
        & ~posts["is_deleted"].fillna(False).astype(bool),
        "date",
    ]
    if dated.empty:
        return known
    return dated.max() if known is None else max(known, dated.max())


def newest_of_rows(
    known: pd.Timestamp | None, rows: Iterable[Mapping[str, Any]]
) -> pd.Timestamp | None:
    """`newest_post` over post rows not yet in a frame (the listing's hot path)."""
    dates = [r["date"] for r in rows if r["date"] and not r["is_pinned"] and not r["is_deleted"]]
    if not dates:
        return known
    newest = pd.Timestamp(max(dates))
    return newest if known is None or pd.isna(known) else max(pd.Timestamp(known), newest)


def newest_by_group(posts: pd.DataFrame) -> dict[int, pd.Timestamp]:
    """`newest_post` of each group of `posts` (a `group_id` column), in one pass."""
    dated = posts[
        ~posts["is_pinned"].fillna(False).astype(bool)
        & ~posts["is_deleted"].fillna(False).astype(bool)
    ]
    return {int(g): d for g, d in dated.groupby("group_id", sort=False)["date"].max().items()}


def _phase_seconds(owner: pd.Series, post_id: pd.Series, period: float) -> np.ndarray:
    """A fixed point in each post's verification cycle, spread evenly by a hash of its key."""
    key = post_id.to_numpy(dtype=np.uint64) * np.uint64(2654435761) + owner.abs().to_numpy(
        dtype=np.uint64
    ) * np.uint64(40503)
    return (key % np.uint64(1_000_003)).astype(np.float64) / 1_000_003 * period
