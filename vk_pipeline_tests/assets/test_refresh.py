"""The refresh policy on its own: which walls are listed how far, whose comments are re-read."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from vk_pipeline.assets.refresh import (
    POST_DELETED,
    RefreshPolicy,
    deleted_not_settled,
    never_synced_empty,
    newest_by_group,
    newest_of_rows,
    newest_post,
)

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def ts(days_ago: float) -> pd.Timestamp:
    return pd.Timestamp(NOW - timedelta(days=days_ago))


def posts(*rows: dict) -> pd.DataFrame:
    defaults = {
        "owner_id": -1,
        "group_id": 1,
        "date": ts(30),
        "comments_count": 0,
        "comments_can_post": True,
        "comments_synced_count": None,
        "comments_synced_at": pd.NaT,
        "comments_status": None,
        "is_deleted": False,
        "is_pinned": False,
    }
    frame = pd.DataFrame([{**defaults, "id": i + 1, **r} for i, r in enumerate(rows)])
    frame["comments_synced_at"] = pd.to_datetime(frame["comments_synced_at"], utc=True)
    frame["date"] = pd.to_datetime(frame["date"], utc=True)
    frame["comments_synced_count"] = frame["comments_synced_count"].astype("Float64")
    return frame


def test_a_wall_is_listed_whole_until_a_listing_completes_then_down_to_the_older_bound():
    windowed = RefreshPolicy(NOW, lookback_days=3, full_listing=False)
    assert windowed.list_since(None) is None
    assert windowed.list_since(pd.NaT) is None
    # Listed through yesterday: the window (3 days) reaches further back.
    assert windowed.list_since(ts(1)) == ts(3)
    # Listed through ten days ago: back to there, so nothing posted since is skipped.
    assert windowed.list_since(ts(10)) == ts(10)
    assert RefreshPolicy(NOW, full_listing=True).list_since(ts(1)) is None
    start = RefreshPolicy(NOW, start_date=date(2026, 1, 31))
    assert start.list_since(None) == pd.Timestamp("2026-01-31", tz="UTC")


def test_vanished_posts_are_only_those_inside_the_part_listed():
    stored = posts({"date": ts(1)}, {"date": ts(5)}, {"date": ts(1), "is_deleted": True})
    policy = RefreshPolicy(NOW)
    assert policy.vanished(stored, read_ids=set(), since=ts(3)) == [1]
    assert policy.vanished(stored, read_ids={1}, since=None) == [2]


def test_reasons_in_order_changed_recent_stale_probe():
    policy = RefreshPolicy(NOW, lookback_days=3, verify_days=7, fresh_hours=12)
    frame = posts(
        {"comments_count": 5, "comments_synced_count": 4, "comments_synced_at": ts(0.1)},
        {
            "comments_count": 5,
            "comments_synced_count": 5,
            "comments_synced_at": ts(2),
            "date": ts(1),
        },
        {"comments_count": 5, "comments_synced_count": 5, "comments_synced_at": ts(8)},
        {"comments_count": 0, "comments_can_post": False},
        {
            "comments_count": 5,
            "comments_synced_count": 5,
            "comments_synced_at": ts(0.1),
            "date": ts(1),
        },
        {"comments_count": 0, "comments_synced_count": 0, "comments_synced_at": ts(8)},
        {"comments_count": 5, "is_deleted": True},
    )
    chosen = policy.posts_to_crawl(frame).set_index("id")["reason"].to_dict()
    # 5: recent but verified within fresh_hours (a rerun resumes); 6: nothing to read; 7: gone.
    assert chosen == {1: "changed", 2: "recent", 3: "stale", 4: "probe"}


@pytest.mark.parametrize("verify_days", [1, 7])
def test_every_post_is_verified_within_verify_days_and_spread_over_them(verify_days):
    n = 2_000
    synced = posts(*[{"comments_count": 1, "comments_synced_count": 1} for _ in range(n)])
    synced["comments_synced_at"] = pd.Timestamp(NOW)
    due_by_day = []
    for day in range(1, verify_days + 1):
        later = RefreshPolicy(NOW + timedelta(days=day), verify_days=verify_days)
        due_by_day.append(int(later.due_for_verification(synced).sum()))
    assert due_by_day[-1] == n
    # About 1/verify_days of the posts fall due each day, not all at once on the last day.
    firsts = [due_by_day[0]] + [b - a for a, b in itertools.pairwise(due_by_day)]
    assert all(abs(f - n / verify_days) < 0.1 * n for f in firsts)
    assert not RefreshPolicy(NOW, verify_days=verify_days).due_for_verification(synced).any()


def test_empty_never_synced_and_deleted_posts_are_settled_without_asking_vk():
    frame = posts(
        {"comments_count": 0},
        {"comments_count": 0, "comments_can_post": False},
        {"comments_count": 3},
        {"is_deleted": True},
        {"is_deleted": True, "comments_status": POST_DELETED},
    )
    assert list(never_synced_empty(frame)["id"]) == [1]
    assert list(deleted_not_settled(frame)["id"]) == [4]


def test_the_newest_post_ignores_pinned_and_deleted_ones():
    frame = posts(
        {"date": ts(400), "is_pinned": True}, {"date": ts(2)}, {"date": ts(1), "is_deleted": True}
    )
    frame.loc[0, "date"] = pd.Timestamp(NOW)  # a pinned post dated now still does not count
    assert newest_post(None, frame) == ts(2)
    assert newest_post(ts(0.5), frame) == ts(0.5)
    assert newest_post(ts(9), frame.iloc[:0]) == ts(9)


def test_newest_by_group_agrees_with_newest_post_for_each_group():
    frame = posts(
        {"date": ts(400), "is_pinned": True},
        {"date": ts(2)},
        {"date": ts(1), "is_deleted": True},
        {"group_id": 2, "date": ts(5)},
        {"group_id": 2, "date": ts(3)},
        {"group_id": 3, "date": ts(1), "is_deleted": True},
    )
    by_group = newest_by_group(frame)
    assert by_group == {1: ts(2), 2: ts(3)}
    for gid, newest in by_group.items():
        assert newest_post(None, frame[frame["group_id"] == gid]) == newest
    assert 3 not in by_group  # only a deleted post: nothing known, as newest_post says


def test_newest_of_rows_agrees_with_newest_post():
    frame = posts(
        {"date": ts(400), "is_pinned": True}, {"date": ts(2)}, {"date": ts(1), "is_deleted": True}
    )
    frame.loc[0, "date"] = pd.Timestamp(NOW)
    rows = frame.to_dict("records")
    assert newest_of_rows(None, rows) == newest_post(None, frame) == ts(2)
    assert newest_of_rows(ts(0.5), rows) == ts(0.5)
    assert newest_of_rows(ts(9), []) == ts(9)
