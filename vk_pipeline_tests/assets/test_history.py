"""Revisions, counter snapshots and authors through the real assets, against the emulator."""

from __future__ import annotations

from collections import Counter

import dagster as dg

from vk_pipeline.assets import vk_assets
from vk_pipeline.testing import crawl
from vk_pipeline.testing.history import expected_revisions, stored_keys, stored_revisions
from vk_pipeline_tests.assets.conftest import Pipeline

# Re-read every post and its comments at each crawl, so every change between crawls is seen.
EVERYTHING = {"lookback_days": 3650, "fresh_hours": 0}


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


def test_growth_curves_stay_between_real_observations(pipeline: Pipeline) -> None:
    import statistics

    from vk_pipeline.assets.analysis import post_growth

    world = pipeline.world
    pipeline.crawl(**EVERYTHING)
    for _ in range(4):
        world.advance(days=0.25, new_posts=0.05, commented_posts=0, edits=0, deletions=0, growth=1)
        pipeline.crawl(**EVERYTHING)
    result = dg.materialize(
        [post_growth],
        instance=pipeline.instance,
        resources=pipeline.resources,
        tags=crawl.range_tags(pipeline.keys),
    )
    curve = result.asset_materializations_for_node("post_growth")[0].metadata["median_curve"]
    assert "median views" in curve.value
    points = pipeline.query(
        "SELECT g.owner_id, g.post_id, g.age_hours, g.views,"
        " (SELECT min(views) FROM vk.post_counters c WHERE c.owner_id = g.owner_id"
        "  AND c.post_id = g.post_id),"
        " (SELECT max(views) FROM vk.post_counters c WHERE c.owner_id = g.owner_id"
        "  AND c.post_id = g.post_id),"
        " (SELECT min(c.observed_at - p.date) <= make_interval(hours => g.age_hours)"
        "     AND max(c.observed_at - p.date) >= make_interval(hours => g.age_hours)"
        "  FROM vk.post_counters c JOIN vk.posts p ON p.owner_id = c.owner_id AND p.id = c.post_id"
        "  WHERE c.owner_id = g.owner_id AND c.post_id = g.post_id)"
        " FROM vk.post_growth g"
    )
    young = [p for p in points if p[2] <= 24]
    assert young, "no post was observed on both sides of a young age"
    for _, _, _, views, lo, hi, bracketed in points:
        assert bracketed
        if views is not None:
            assert lo <= views <= hi
    gid, age = pipeline.query("SELECT group_id, age_hours FROM vk.group_growth LIMIT 1")[0]
    values = [
        r[0]
        for r in pipeline.query(
            "SELECT views FROM vk.post_growth WHERE group_id = %s AND age_hours = %s"
            " AND views IS NOT NULL",
            gid,
            age,
        )
    ]
    median = pipeline.query(
        "SELECT views FROM vk.group_growth WHERE group_id = %s AND age_hours = %s", gid, age
    )[0][0]
    assert median == statistics.median(values)


def test_top_commenters_show_names_and_profile_links(pipeline: Pipeline) -> None:
    from vk_pipeline.assets.analysis import analysis

    pipeline.crawl()
    result = dg.materialize(
        [analysis],
        instance=pipeline.instance,
        resources=pipeline.resources,
        tags=crawl.range_tags(pipeline.keys),
    )
    # Each partition previews its own group's commenters (a quiet group's is empty).
    previews = [
        str(e.materialization.metadata["preview"].value)
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("top_commenters")
    ]
    assert any("author_name" in p and "https://vk.com/" in p for p in previews)
    rows = pipeline.query(
        "SELECT from_id, author_name, author_url, author_deactivated FROM vk.top_commenters_named"
    )
    assert rows
    for from_id, name, url, deactivated in rows:
        assert url is not None, from_id
        # Users VK shows as DELETED from the start have no name anyone saw.
        assert name is not None or deactivated == "deleted", from_id
