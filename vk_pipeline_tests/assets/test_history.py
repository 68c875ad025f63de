"""Revisions, counter snapshots and authors through the real assets, against the emulator."""

from __future__ import annotations

from collections import Counter

import dagster as dg

from vk_pipeline.assets import vk_assets
from vk_pipeline.testing import crawl
from vk_pipeline.testing.history import expected_revisions, stored_keys, stored_revisions
from vk_pipeline_tests.assets.conftest import Pipeline

# Re-read every post and its comments at each crawl, so every change between crawls is seen.
EVERYTHING = {"lookback_days": 3650}


def test_revisions_equal_the_emulators_change_log(pipeline: Pipeline) -> None:
    world = pipeline.world
    pipeline.crawl(**EVERYTHING)
    expected: Counter = Counter()
    for _ in range(3):
        known = stored_keys(pipeline.database_url)
        start = len(world.change_log)
        world.advance(
            days=1, new_posts=0.02, commented_posts=0.05, edits=0.03, deletions=0.03, restores=0.3
        )
        pipeline.crawl(**EVERYTHING)
        for key, (kind, before) in expected_revisions(world.change_log[start:], known).items():
            expected[(key, kind, before)] += 1
    kinds = Counter(kind for _, kind, _ in expected.elements())
    assert kinds["edited"] and kinds["deleted"] and kinds["restored"]
    assert stored_revisions(pipeline.database_url) == expected
    # Crawling again without a change adds nothing.
    pipeline.crawl(**EVERYTHING)
    assert stored_revisions(pipeline.database_url) == expected


def test_counter_snapshots_grow_with_changes_not_with_reads(pipeline: Pipeline) -> None:
    world = pipeline.world
    pipeline.crawl(**EVERYTHING)
    first = pipeline.query(
        "SELECT count(*), count(DISTINCT (owner_id, post_id)) FROM vk.post_counters"
    )
    posts = pipeline.query("SELECT count(*) FROM vk.posts WHERE NOT is_deleted")
    # One snapshot per post on the first read.
    assert first[0][0] == first[0][1] == posts[0][0]
    pipeline.crawl(**EVERYTHING)
    assert pipeline.query("SELECT count(*) FROM vk.post_counters") == [(first[0][0],)]
    world.advance(days=0.5, new_posts=0.05, commented_posts=0, edits=0, deletions=0, growth=1)
    pipeline.crawl(**EVERYTHING)
    grown = pipeline.query(
        "SELECT owner_id, post_id, count(*) FROM vk.post_counters GROUP BY 1, 2 HAVING count(*) > 1"
    )
    assert grown
    audience = pipeline.query("SELECT count(*) FROM vk.group_counters")
    assert audience[0][0] > 0


def test_authors_are_fetched_once_and_refreshed_when_stale(pipeline: Pipeline) -> None:
    world = pipeline.world
    pipeline.crawl()
    commenters = pipeline.query(
        "SELECT count(DISTINCT from_id) FROM vk.comments WHERE from_id IS NOT NULL"
    )[0][0]
    stored = pipeline.query(
        "SELECT count(*), count(*) FILTER (WHERE kind = 'group') FROM vk.authors"
    )
    assert stored[0][0] >= commenters > 0
    named = pipeline.query(
        "SELECT id, name, url FROM vk.authors WHERE kind = 'user' AND deactivated IS NULL"
        " AND name IS NOT NULL ORDER BY id LIMIT 1"
    )
    uid, name, url = named[0]
    assert url.startswith("https://vk.com/")
    deleted = pipeline.query(
        "SELECT name, deactivated FROM vk.authors WHERE id %% 53 = 0 AND id > 0"
    )
    assert all(d == "deleted" for _, d in deleted)

    # A second run with nothing stale asks VK for no profile.
    result = pipeline.crawl()
    meta = crawl.metadata(result)["authors"]
    assert meta["new"] == 0 and meta["refreshed"] == 0

    world.deactivate_user(uid)
    run_config = crawl.crawl_run_config({"as_of": pipeline.as_of})
    run_config["ops"]["authors"] = {"config": {"refresh_after_days": 0}}
    dg.materialize(
        vk_assets,
        instance=pipeline.instance,
        resources=pipeline.resources,
        run_config=run_config,
        tags=crawl.range_tags(pipeline.keys),
    )
    after = pipeline.query("SELECT name, deactivated FROM vk.authors WHERE id = %s", uid)
    # Deactivated: VK now says DELETED, the last known name stays.
    assert after == [(name, "deleted")]
