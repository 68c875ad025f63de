"""One bad partition key, or a group VK does not serve, never fails the groups beside it, and
each partition's materialization carries its own metadata."""

from __future__ import annotations

import dagster as dg
from dagster._core.test_utils import create_run_for_test

from vk_pipeline.assets.checks import CHECKS
from vk_pipeline.automation.keys import remove_invalid_keys
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.testing.crawl import range_tags
from vk_pipeline_tests.assets.conftest import Pipeline
from vk_pipeline_tests.assets.test_checks import ALL, evaluations

BAD_KEY = "football_perm"
UNKNOWN_GROUP = "987654321"  # a group id VK does not serve


def test_a_bad_key_in_a_range_skips_only_itself(pipeline: Pipeline):
    # As the UI's "add partition" box does it: typed after the groups already there.
    keys = [*pipeline.keys, UNKNOWN_GROUP, BAD_KEY]
    pipeline.instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, [UNKNOWN_GROUP, BAD_KEY])
    result = dg.materialize(
        ALL, instance=pipeline.instance, resources=pipeline.resources, tags=range_tags(keys)
    )
    assert result.success
    # Every valid group is stored, and the unknown one is recorded as not found.
    stored = dict(pipeline.query("SELECT id::text, status FROM vk.groups"))
    assert set(stored) == {*pipeline.keys, UNKNOWN_GROUP}
    assert stored[UNKNOWN_GROUP] == "not_found"
    # The bad key's materializations say it was skipped and hold no rows; nothing else does.
    for e in result.get_asset_materialization_events():
        meta = {k: v.value for k, v in e.materialization.metadata.items()}
        if e.materialization.partition == BAD_KEY:
            assert meta["dagster/row_count"] == 0, e.asset_key
            assert "not a VK group id" in meta.get("skipped", ""), e.asset_key
        else:
            assert "skipped" not in meta
    # Checks: every group id gets a result and passes; the bad key gets none.
    found = evaluations(result)
    assert {p for _, p in found} == {*pipeline.keys, UNKNOWN_GROUP}
    assert {k: e.description for k, e in found.items() if not e.passed} == {}
    assert len(found) == len(CHECKS) * (len(pipeline.keys) + 1)

    # The sensor removes the bad key (no unfinished run names it) and only it.
    logged: list[str] = []
    removed, held = remove_invalid_keys(pipeline.instance, logged.append)
    assert (removed, held) == ([BAD_KEY], [])
    assert BAD_KEY in logged[0] and "not a VK group id" in logged[0]
    assert pipeline.instance.get_dynamic_partitions(GROUP_PARTITIONS_NAME) == keys[:-1]


def test_a_bad_key_an_unfinished_run_names_is_kept_until_it_ends(pipeline: Pipeline):
    keys = [*pipeline.keys, BAD_KEY]
    pipeline.instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, [BAD_KEY])
    run = create_run_for_test(
        pipeline.instance,
        job_name="crawl_groups",
        tags=range_tags(keys),
        status=dg.DagsterRunStatus.STARTED,
    )
    assert remove_invalid_keys(pipeline.instance, print) == ([], [BAD_KEY])
    pipeline.instance.report_run_failed(run)
    assert remove_invalid_keys(pipeline.instance, print) == ([BAD_KEY], [])


def test_each_partition_of_a_range_carries_its_own_rows(pipeline: Pipeline):
    result = pipeline.crawl()
    assert result.success
    counts = {
        table: dict(pipeline.query(f"SELECT group_id::text, count(*) FROM vk.{table} GROUP BY 1"))
        for table in ("posts", "comments")
    }
    counts["groups"] = {k: 1 for k in pipeline.keys}
    seen = 0
    events = result.get_asset_materialization_events()
    last = {e.asset_key.to_user_string(): e for e in events}
    for e in events:
        asset, key = e.asset_key.to_user_string(), e.materialization.partition
        meta = {k: v.value for k, v in e.materialization.metadata.items()}
        # The table's column schema and the run's totals (its writes, its VK calls) on the
        # asset's last (latest) materialization, not copied onto every partition's.
        assert ("dagster/column_schema" in meta) == (e is last[asset]), (asset, key)
        assert ("write_mode" in meta) == (e is last[asset]), (asset, key)
        if asset in ("groups", "posts", "comments"):
            assert ("vk_api_calls" in meta) == (e is last[asset]), (asset, key)
        if e is last[asset]:
            names = {c.name for c in meta["dagster/column_schema"].columns}
            assert "group_id" in names or asset in ("groups", "authors"), asset
        if asset == "authors":
            continue  # one table shared by every group: no per-group slice to count
        assert meta["dagster/row_count"] == counts[asset].get(key, 0), (asset, key)
        if "preview" in meta:
            # The preview shows this group's rows only.
            owner = f"-{key}" if asset != "groups" else key
            rows = meta["preview"].splitlines()[2:]
            assert rows and all(r.split("|")[1].strip() == owner for r in rows), (asset, key)
            seen += 1
    assert seen >= 3
