"""The three assets on real Postgres against the emulator: complete, incremental, idempotent."""

from __future__ import annotations

import dagster as dg
import pytest

from vk_pipeline.emulator import World
from vk_pipeline.testing.databases import create_database, drop_database
from vk_pipeline_tests.assets.conftest import (
    EVERYTHING,
    Pipeline,
    assert_database_equals_truth,
    make_pipeline,
    materialization,
    materializations,
)


def test_first_load_equals_truth_for_groups_of_every_kind(pipeline: Pipeline):
    result = pipeline.crawl()
    assert result.success
    assert_database_equals_truth(pipeline)
    posts_meta = materialization(result, "posts")
    unreadable = posts_meta["unreadable_groups"]
    for gid in pipeline.world.group_ids():
        readable = pipeline.world.group_kind(gid) == "open"
        assert (str(gid) not in unreadable) == readable, pipeline.world.group_kind(gid)
    comments_meta = materialization(result, "comments")
    # Each partition counts its own rows; together they are the table.
    [(stored,)] = pipeline.query("SELECT count(*) FROM vk.comments")
    assert sum(m["dagster/row_count"] for m in materializations(result, "comments")) == stored > 0
    assert comments_meta["inserted"] == comments_meta["rows"]
    assert comments_meta["vk_http_requests"] > 0
    closed = sum(
        len(pipeline.world.post_ids_with_comments_closed(g)) for g in pipeline.world.group_ids()
    )
    [(recorded,)] = pipeline.query("SELECT count(*) FROM vk.posts WHERE comments_status = 'closed'")
    assert recorded == closed


def test_refresh_after_the_world_moves_equals_the_new_truth(pipeline: Pipeline):
    assert pipeline.crawl().success
    change = pipeline.world.advance(
        days=1, new_posts=0.05, commented_posts=0.05, edits=0.02, deletions=0.02
    )
    result = pipeline.crawl(**EVERYTHING)
    assert result.success
    assert_database_equals_truth(pipeline)
    # Each partition's materialization carries its own group's tally.
    tombstoned = sum(m["tombstoned"] for m in materializations(result, "comments"))
    assert tombstoned > 0 or change.get("deleted_comments", 0) == 0
    [(edited,)] = pipeline.query("SELECT count(*) FROM vk.posts WHERE edited IS NOT NULL")
    assert edited > 0


def test_incremental_refresh_reads_only_what_changed(pipeline: Pipeline):
    assert pipeline.crawl().success
    world = pipeline.world
    open_groups = [g for g in world.group_ids() if world.group_kind(g) == "open" and world.posts(g)]
    change = world.advance(days=1, new_posts=0.0, commented_posts=0.02, edits=0.0, deletions=0.0)
    changed_groups = {g for g, _ in change["affected"]}
    assert changed_groups and set(open_groups) - changed_groups, (
        "the world change should spare a group"
    )
    # Only the count-change mechanism: no lookback window, no staleness cycle turning.
    result = pipeline.crawl(lookback_days=0, verify_days=100_000)
    assert result.success
    meta = materialization(result, "comments")
    per_group = meta["per_group"]
    for gid in open_groups:
        if gid not in changed_groups:
            assert per_group[str(gid)]["calls"] == 0, gid
        else:
            assert set(per_group[str(gid)]["reasons"]) == {"changed"}, gid
    # comment counts now match the new truth everywhere
    for gid in open_groups:
        for p in world.posts(gid):
            [(n,)] = pipeline.query(
                "SELECT count(*) FROM vk.comments WHERE owner_id = %s AND post_id = %s AND NOT is_deleted",
                -gid,
                p["id"],
            )
            assert n == len([c for c in world.comments(gid, p["id"]) if not c.get("deleted")])


def test_materializing_twice_changes_nothing(pipeline: Pipeline):
    assert pipeline.crawl().success
    snapshot = pipeline.query(
        "SELECT owner_id, id, text, is_deleted, last_changed_at FROM vk.comments ORDER BY 1, 2"
    )
    result = pipeline.crawl()
    meta = materialization(result, "comments")
    assert meta["inserted"] == 0 and meta["updated"] == 0
    assert meta["vk_calls_by_method"].get("wall.getComments", 0) == 0
    posts_meta = materialization(result, "posts")
    assert posts_meta["inserted"] == 0 and posts_meta["updated"] == 0
    assert (
        pipeline.query(
            "SELECT owner_id, id, text, is_deleted, last_changed_at FROM vk.comments ORDER BY 1, 2"
        )
        == snapshot
    )


def table_contents(p: Pipeline) -> dict[str, list[tuple]]:
    return {
        "groups": p.query("SELECT id, name, status, members_count, raw FROM vk.groups ORDER BY id"),
        "posts": p.query(
            "SELECT owner_id, id, group_id, date, text, comments_count, comments_synced_count, "
            "comments_status, raw FROM vk.posts ORDER BY 1, 2"
        ),
        "comments": p.query(
            "SELECT owner_id, id, post_id, from_id, date, text, parents_stack, is_deleted, raw "
            "FROM vk.comments ORDER BY 1, 2"
        ),
    }


def test_range_run_equals_one_run_per_group(pipeline: Pipeline, emulator_factory, pg_admin_url):
    assert pipeline.crawl().success
    ranged = table_contents(pipeline)
    other_url = create_database(pg_admin_url)
    try:
        with dg.instance_for_test() as instance:
            single = make_pipeline(pipeline.world, pipeline.server, other_url, instance)
            for key in single.keys:
                assert single.crawl([key]).success
            assert table_contents(single) == ranged
    finally:
        drop_database(pg_admin_url, other_url)


def test_start_date_bounds_the_first_load(pipeline: Pipeline):
    world: World = pipeline.world
    gid = max(world.group_ids(), key=lambda g: len(world.posts(g)))
    dates = sorted(p["date"] for p in world.posts(gid))
    cutoff = dates[len(dates) // 2]
    import datetime as dt

    start = dt.datetime.fromtimestamp(cutoff, dt.UTC).date().isoformat()
    assert pipeline.crawl([str(gid)], start_date=start).success
    [(oldest,)] = pipeline.query(
        "SELECT min(date) FROM vk.posts WHERE group_id = %s AND NOT is_pinned", gid
    )
    assert oldest.date().isoformat() >= start


@pytest.mark.parametrize("threads", [False])
def test_threads_off_reads_only_inline_replies(pipeline: Pipeline, threads: bool):
    assert pipeline.crawl(threads=threads).success
    [(calls,)] = pipeline.query("SELECT count(*) FROM vk.comments WHERE thread_root_id IS NOT NULL")
    assert calls == 0
