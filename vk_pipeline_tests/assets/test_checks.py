"""Asset checks on a crawled world: all pass on a faithful load, and the right ones fail, naming
the right rows, on a deliberately damaged database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg
import psycopg
import pytest

from vk_pipeline.assets import vk_assets
from vk_pipeline.assets.analysis import analysis_assets
from vk_pipeline.assets.checks import CHECKS, vk_checks
from vk_pipeline.jobs import analysis_job, crawl_job
from vk_pipeline.testing.crawl import range_tags
from vk_pipeline_tests.assets.conftest import Pipeline

ALL = [*vk_assets, *analysis_assets, *vk_checks]


def run(
    p: Pipeline, selection: dg.AssetSelection | None = None, keys: Sequence[str] | None = None
) -> dg.ExecuteInProcessResult:
    """One ranged run over the world's groups: the crawl job's assets and checks (or a part)."""
    keys = list(keys or p.keys)
    return dg.materialize(
        ALL,
        instance=p.instance,
        resources=p.resources,
        selection=selection,
        tags=range_tags(keys),
    )


def evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], Any]:
    """(check name, partition) → evaluation."""
    out = {}
    for e in result.get_asset_check_evaluations():
        key = (e.check_name, e.partition)
        assert key not in out, f"two results for {key}"
        out[key] = e
    return out


def test_every_check_passes_per_partition_on_a_faithful_crawl(pipeline: Pipeline):
    result = run(pipeline)
    assert result.success
    found = evaluations(result)
    names = {c.name for c in CHECKS}
    assert set(found) == {(n, k) for n in names for k in pipeline.keys}
    failed = {k: e.description for k, e in found.items() if not e.passed}
    assert failed == {}
    # Recorded per partition in the instance, as the UI reads them.
    for check in CHECKS:
        key = dg.AssetCheckKey(dg.AssetKey(check.asset), check.name)
        infos = pipeline.instance.event_log_storage.get_asset_check_partition_info([key])
        assert {i.partition_key: i.latest_execution_status.value for i in infos} == {
            k: "SUCCEEDED" for k in pipeline.keys
        }
        # Each result points at the materialization it checked, so the UI shows it as current.
        assert all(i.latest_target_materialization_storage_id is not None for i in infos)
    counts = found[("comment_counts_match_vk", _big_group(pipeline))].metadata
    assert counts["posts_checked"].value > 0
    assert counts["posts_differing"].value == 0


def _big_group(p: Pipeline) -> str:
    [(gid,)] = p.query(
        "SELECT group_id FROM vk.comments GROUP BY group_id ORDER BY count(*) DESC LIMIT 1"
    )
    return str(gid)


def _one(p: Pipeline, sql: str, *params: Any) -> tuple:
    rows = p.query(sql, *params)
    assert rows, sql
    return rows[0]


def test_damaged_database_fails_the_right_checks_naming_the_rows(pipeline: Pipeline):
    p = pipeline
    assert run(p).success
    world = p.world
    open_groups = [g for g in world.group_ids() if world.group_kind(g) == "open" and world.posts(g)]
    empty = next(
        g for g in world.group_ids() if world.group_kind(g) == "open" and not world.posts(g)
    )
    gone = next(g for g in world.group_ids() if world.group_kind(g) == "banned")
    a, b = open_groups[0], open_groups[1]
    # 1. A post deleted on VK whose comments were left live.
    deleted_post, live = _one(
        p,
        "SELECT post_id, array_agg(id ORDER BY id) FROM vk.comments WHERE group_id = %s"
        " AND NOT is_deleted GROUP BY post_id HAVING count(*) >= 2 ORDER BY post_id LIMIT 1",
        a,
    )
    # 2. A comment row removed under another post (one nobody replies to).
    cut_post, cut_comment, vk_count = _one(
        p,
        "SELECT c.post_id, c.id, p.comments_count FROM vk.comments c"
        " JOIN vk.posts p ON p.owner_id = c.owner_id AND p.id = c.post_id"
        " WHERE c.group_id = %s AND NOT c.is_deleted AND c.post_id <> %s"
        " AND NOT EXISTS (SELECT 1 FROM vk.comments r WHERE r.owner_id = c.owner_id"
        "                 AND (r.reply_to_comment = c.id OR r.thread_root_id = c.id))"
        # A post without deleted comments: with one, VK may count it or not, and the check's
        # interval (live .. live + deleted) would cover one live comment lost.
        " AND NOT EXISTS (SELECT 1 FROM vk.comments d WHERE d.owner_id = c.owner_id"
        "                 AND d.post_id = c.post_id AND d.is_deleted)"
        " ORDER BY c.post_id, c.id LIMIT 1",
        a,
        deleted_post,
    )
    # 3. A comment whose post is missing (the foreign key bypassed, as a restore without
    #    constraints or a manual delete would).
    [(max_id,)] = p.query("SELECT max(id) FROM vk.comments WHERE owner_id = %s", -b)
    orphan_post, orphan_comment = 999_999_999, max_id + 1
    # 4. A post dated after it was first stored, and a pinned post that is not stored.
    future_post = _one(p, "SELECT id FROM vk.posts WHERE group_id = %s ORDER BY id LIMIT 1", b)[0]
    with psycopg.connect(p.database_url) as conn:
        conn.execute(
            "UPDATE vk.posts SET is_deleted = true, deleted_seen_at = now()"
            " WHERE owner_id = %s AND id = %s",
            (-a, deleted_post),
        )
        conn.execute("DELETE FROM vk.comments WHERE owner_id = %s AND id = %s", (-a, cut_comment))
        conn.execute("SET session_replication_role = replica")  # skips FK triggers
        conn.execute(
            "INSERT INTO vk.comments (owner_id, id, group_id, post_id, from_id, date, text)"
            " VALUES (%s, %s, %s, %s, 1, now(), 'сирота')",
            (-b, orphan_comment, b, orphan_post),
        )
        conn.execute("SET session_replication_role = DEFAULT")
        conn.execute(
            "UPDATE vk.posts SET date = now() + interval '2 days' WHERE owner_id = %s AND id = %s",
            (-b, future_post),
        )
        # 5. VK shows a pinned post on the empty wall, and a partition lost its group row.
        conn.execute(
            "UPDATE vk.groups SET raw = jsonb_set(coalesce(raw, '{}'), '{fixed_post}', '424242')"
            " WHERE id = %s",
            (empty,),
        )
        conn.execute("DELETE FROM vk.groups WHERE id = %s", (gone,))

    result = run(p, selection=dg.AssetSelection.all_asset_checks())
    assert result.success  # checks report, they do not fail the run
    assert not result.get_asset_materialization_events()
    found = evaluations(result)
    failed = {k for k, e in found.items() if not e.passed}
    assert failed == {
        ("no_live_comments_under_deleted_posts", str(a)),
        ("comment_counts_match_vk", str(a)),
        ("comments_have_posts", str(b)),
        ("no_post_after_crawl", str(b)),
        ("readable_group_has_posts", str(empty)),
        ("pinned_post_stored", str(empty)),
        ("group_row_present", str(gone)),
    }
    severity = {c.name: c.severity for c in CHECKS}
    assert severity["comment_counts_match_vk"] == dg.AssetCheckSeverity.WARN
    assert severity["comments_have_posts"] == dg.AssetCheckSeverity.ERROR
    for key in failed:
        assert found[key].severity == severity[key[0]]

    under = found[("no_live_comments_under_deleted_posts", str(a))]
    [post] = under.metadata["posts"].value
    assert post["url"] == f"https://vk.com/wall-{a}_{deleted_post}"
    assert post["stored_live"] == len(live)
    assert post["comment_ids"] == live[:5]
    assert f"wall-{a}_{deleted_post}" in under.description

    counts = found[("comment_counts_match_vk", str(a))]
    [post] = counts.metadata["posts"].value
    assert (post["post_id"], post["vk_count"], post["allowed"]) == (
        cut_post,
        vk_count,
        [vk_count - 1, vk_count - 1],
    )
    assert counts.metadata["vk_minus_stored"].value == 1

    orphans = found[("comments_have_posts", str(b))]
    [post] = orphans.metadata["posts"].value
    assert (post["post_id"], post["post_stored"], post["comment_ids"]) == (
        orphan_post,
        False,
        [orphan_comment],
    )

    future = found[("no_post_after_crawl", str(b))].metadata["posts"].value
    assert [f["url"] for f in future] == [f"https://vk.com/wall-{b}_{future_post}"]
    assert "424242" in found[("pinned_post_stored", str(empty))].description
    assert found[("group_row_present", str(gone))].description == f"no groups row for group {gone}"
    # The run's results are recorded per partition: the damaged ones failed, the rest passed.
    key = dg.AssetCheckKey(dg.AssetKey("comments"), "comments_have_posts")
    infos = p.instance.event_log_storage.get_asset_check_partition_info([key])
    status = {i.partition_key: i.latest_execution_status.value for i in infos}
    assert status == {k: ("FAILED" if k == str(b) else "SUCCEEDED") for k in p.keys}


def test_checks_hold_on_any_faithful_vk_and_fail_outside_it(pipeline: Pipeline):
    """What VK leaves undocumented never fails a check: `fixed_post` 0 or absent (no pinned
    post), and a comment count with or without the deleted comments. Outside that, they fail."""
    p = pipeline
    assert run(p).success
    open_groups = [g for g in p.world.group_ids() if p.world.group_kind(g) == "open"]
    a = _big_group(p)
    # Posts with stored deleted comments: VK may count all of them, some, or none.
    with_deleted = p.query(
        "SELECT post_id, count(*) FILTER (WHERE NOT is_deleted), count(*) FILTER (WHERE is_deleted)"
        " FROM vk.comments WHERE group_id = %s GROUP BY post_id"
        " HAVING count(*) FILTER (WHERE is_deleted) > 0 AND count(*) FILTER (WHERE NOT is_deleted) > 0"
        " ORDER BY post_id LIMIT 4",
        int(a),
    )
    assert len(with_deleted) == 4, "the world has posts with deleted comments"
    (p1, live1, _), (p2, live2, dead2), (p3, live3, _), (p4, live4, dead4) = with_deleted
    counts = {p1: live1, p2: live2 + dead2, p3: live3 - 1, p4: live4 + dead4 + 1}
    with psycopg.connect(p.database_url) as conn:
        for pid, count in counts.items():
            conn.execute(
                "UPDATE vk.posts SET comments_count = %s WHERE owner_id = %s AND id = %s",
                (count, -int(a), pid),
            )
        # One group pins nothing the way VK says it (0), another has no fixed_post at all.
        conn.execute(
            "UPDATE vk.groups SET raw = jsonb_set(coalesce(raw, '{}'), '{fixed_post}', '0')"
            " WHERE id = %s",
            (open_groups[0],),
        )
        conn.execute(
            "UPDATE vk.groups SET raw = raw - 'fixed_post' WHERE id = %s", (open_groups[1],)
        )
    found = evaluations(run(p, selection=dg.AssetSelection.all_asset_checks()))
    assert {k for k, e in found.items() if not e.passed} == {("comment_counts_match_vk", a)}
    differing = found[("comment_counts_match_vk", a)].metadata["posts"].value
    assert {d["post_id"]: d["outside_by"] for d in differing} == {p3: -1, p4: 1}
    for gid in open_groups[:2]:
        assert found[("pinned_post_stored", str(gid))].passed


def test_the_crawl_job_runs_checks_then_analysis_for_one_partition(pipeline: Pipeline):
    """A single-partition run of the real job records its checks per partition and builds the
    analysis tables after the crawl; the analysis job alone builds them again."""
    key = pipeline.keys[0]
    defs = dg.Definitions(
        assets=[*vk_assets, *analysis_assets],
        asset_checks=vk_checks,
        jobs=[crawl_job, analysis_job],
        resources=pipeline.resources,
    )
    result = defs.resolve_job_def(crawl_job.name).execute_in_process(
        instance=pipeline.instance, partition_key=key
    )
    assert result.success
    found = evaluations(result)
    assert set(found) == {(c.name, key) for c in CHECKS}
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {
        "groups",
        "posts",
        "comments",
        "authors",
        "post_stats",
        "top_commenters",
    } <= materialized
    steps = [e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"]
    assert steps.index("analysis") > steps.index("comments")
    result = defs.resolve_job_def(analysis_job.name).execute_in_process(
        instance=pipeline.instance, partition_key=key
    )
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"post_stats", "group_activity_daily", "top_commenters"} <= materialized


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_every_check_is_described(check):
    assert check.description and "\n" not in check.description
