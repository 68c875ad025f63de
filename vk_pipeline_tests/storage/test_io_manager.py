"""PostgresIOManager with real Dagster runs (dg.materialize) on a real PostgreSQL."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from vk_pipeline.storage import COMMIT, FrameStream, PostgresIOManager, PostgresResource, TableWrite
from vk_pipeline.testing.crawl import range_tags
from vk_pipeline_tests.fixtures.postgres import comment_rows, group_rows, post_rows

PARTS = dg.DynamicPartitionsDefinition(name="test_groups")
SEEN: dict[str, Any] = {}


@dg.asset(metadata={"table": "groups"})
def all_groups() -> pd.DataFrame:
    return group_rows([1, 2, 3], name=["один", "два", "три"])


@dg.asset(
    partitions_def=PARTS,
    metadata={"partition_expr": "group_id", "table": "posts"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[all_groups],
)
def wall(context: dg.AssetExecutionContext) -> dg.Output[Any]:
    # Dagster takes a bare generator returned by an asset for a stream of events, so a
    # generator of frames travels inside dg.Output (or a FrameStream).
    return dg.Output(
        post_rows(int(key), [1, 2], comments_count=pd.array([2, 0], dtype="Int64"))
        for key in context.partition_keys
    )


@dg.asset(
    partitions_def=PARTS,
    metadata={"partition_expr": "group_id"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    ins={"wall": dg.AssetIn(metadata={"columns": ["owner_id", "id", "comments_count"]})},
)
def comments(context: dg.AssetExecutionContext, wall: pd.DataFrame) -> FrameStream:
    SEEN["wall"] = wall

    def chunks() -> Iterator[pd.DataFrame | TableWrite]:
        for key in context.partition_keys:
            gid = int(key)
            if SEEN.get("fail"):
                yield comment_rows(gid, 1, [1, 2])
                raise RuntimeError("stream broke")
            yield comment_rows(gid, 1, [1, 2], text=[f"{key}-a", f"{key}-b"])
            sync = pd.DataFrame(
                {
                    "owner_id": pd.array([-gid], dtype="Int64"),
                    "id": pd.array([1], dtype="Int64"),
                    "comments_synced_count": pd.array([2], dtype="Int64"),
                    "comments_status": ["ok"],
                }
            )
            yield TableWrite("posts", sync)
        meta["groups_seen"] = len(context.partition_keys)

    meta: dict[str, Any] = {}
    return FrameStream(chunks(), metadata=meta)


@dg.asset(
    partitions_def=PARTS,
    metadata={"partition_expr": "group_id", "table": "comments", "write_mode": "replace"},
    deps=[comments],
)
def comments_replaced(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return comment_rows(int(context.partition_key), 1, [7], text=["replaced"])


@dg.asset
def comments_summary(comments: pd.DataFrame) -> None:
    SEEN["summary_input"] = comments


@dg.asset(partitions_def=PARTS, metadata={"partition_expr": "group_id", "table": "comments"})
def nothing() -> None:
    return None


ALL = [all_groups, wall, comments, comments_replaced, comments_summary, nothing]


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as inst:
        inst.add_dynamic_partitions(PARTS.name, ["1", "2", "3"])
        yield inst
    SEEN.clear()


def _resources(resource: PostgresResource) -> dict[str, Any]:
    return {"postgres": resource, "io_manager": PostgresIOManager(postgres=resource, chunk_rows=1)}


def _meta(result: dg.ExecuteInProcessResult, node: str) -> dict[str, Any]:
    mats = result.asset_materializations_for_node(node)
    return {k: v.value for m in mats for k, v in m.metadata.items()}


def test_unpartitioned_then_partitioned_runs(
    postgres_resource: PostgresResource, instance: dg.DagsterInstance
) -> None:
    resources = _resources(postgres_resource)
    result = dg.materialize(ALL, selection=[all_groups], instance=instance, resources=resources)
    meta = _meta(result, "all_groups")
    assert meta["table"] == "vk.groups"
    assert (meta["rows"], meta["inserted"], meta["updated"], meta["unchanged"]) == (3, 3, 0, 0)
    assert meta["dagster/row_count"] == 3

    # one partition
    result = dg.materialize(
        ALL,
        selection=[wall, comments],
        instance=instance,
        resources=resources,
        partition_key="1",
    )
    assert result.success
    meta = _meta(result, "comments")
    assert (meta["inserted"], meta["dagster/row_count"]) == (2, 2)
    assert (meta["posts_rows"], meta["posts_updated"]) == (1, 1)
    assert meta["groups_seen"] == 1
    assert list(SEEN["wall"].columns) == ["owner_id", "id", "comments_count"]
    assert sorted(SEEN["wall"]["id"].tolist()) == [1, 2]

    # a range of partitions in one run: input holds both slices, output writes both
    result = dg.materialize(
        ALL,
        selection=[wall, comments],
        instance=instance,
        resources=resources,
        tags=range_tags(["2", "3"]),
    )
    assert result.success
    meta = _meta(result, "comments")
    assert (meta["inserted"], meta["groups_seen"]) == (4, 2)
    assert len(SEEN["wall"]) == 4
    # Each partition's materialization counts its own slice, not the run's.
    for node in ("wall", "comments"):
        counts = {
            m.partition: m.metadata["dagster/row_count"].value
            for m in result.asset_materializations_for_node(node)
        }
        assert counts == {"2": 2, "3": 2}, node

    rows = postgres_resource.execute(
        "SELECT group_id, count(*), min(text) FROM vk.comments GROUP BY 1 ORDER BY 1"
    )
    assert rows == [(1, 2, "1-a"), (2, 2, "2-a"), (3, 2, "3-a")]
    synced = postgres_resource.execute(
        "SELECT group_id, comments_status, comments_synced_count, comments_count"
        " FROM vk.posts WHERE id = 1 ORDER BY 1"
    )
    assert synced == [(1, "ok", 2, 2), (2, "ok", 2, 2), (3, "ok", 2, 2)]

    # re-running an unchanged partition rewrites nothing
    result = dg.materialize(
        ALL,
        selection=[comments],
        instance=instance,
        resources=resources,
        partition_key="1",
    )
    meta = _meta(result, "comments")
    assert (meta["inserted"], meta["updated"], meta["unchanged"]) == (0, 0, 2)
    assert meta["posts_unchanged"] == 1

    # unpartitioned downstream of a partitioned asset reads every partition
    dg.materialize(
        ALL,
        selection=[comments_summary],
        instance=instance,
        resources=resources,
    )
    assert len(SEEN["summary_input"]) == 6


def test_stream_failure_writes_nothing(
    postgres_resource: PostgresResource, instance: dg.DagsterInstance
) -> None:
    resources = _resources(postgres_resource)
    dg.materialize(ALL, selection=[all_groups], instance=instance, resources=resources)
    dg.materialize(ALL, selection=[wall], instance=instance, resources=resources, partition_key="1")
    SEEN["fail"] = True
    result = dg.materialize(
        ALL,
        selection=[comments],
        instance=instance,
        resources=resources,
        partition_key="1",
        raise_on_error=False,
    )
    assert not result.success
    assert postgres_resource.execute("SELECT count(*) FROM vk.comments") == [(0,)]


def test_replace_mode_and_none_output(
    postgres_resource: PostgresResource, instance: dg.DagsterInstance
) -> None:
    resources = _resources(postgres_resource)
    assets = ALL
    dg.materialize(assets, selection=[all_groups], instance=instance, resources=resources)
    dg.materialize(
        assets,
        selection=[wall, comments],
        instance=instance,
        resources=resources,
        tags=range_tags(["1", "2"]),
    )
    result = dg.materialize(
        assets,
        selection=[comments_replaced],
        instance=instance,
        resources=resources,
        partition_key="2",
    )
    meta = _meta(result, "comments_replaced")
    assert (meta["write_mode"], meta["deleted"], meta["inserted"]) == ("replace", 2, 1)
    assert meta["dagster/row_count"] == 1
    rows = postgres_resource.execute("SELECT group_id, id, text FROM vk.comments ORDER BY 1, 2")
    assert rows == [(1, 1, "1-a"), (1, 2, "1-b"), (2, 7, "replaced")]

    result = dg.materialize(
        assets, selection=[nothing], instance=instance, resources=resources, partition_key="1"
    )
    assert result.success
    assert postgres_resource.execute("SELECT count(*) FROM vk.comments") == [(3,)]


@dg.asset(metadata={"table": "groups"}, partitions_def=PARTS)
def groups_then_failure(context: dg.AssetExecutionContext) -> FrameStream:
    def chunks() -> Iterator[Any]:
        yield group_rows([11])
        yield COMMIT
        yield group_rows([12])
        yield COMMIT
        yield group_rows([13])
        raise RuntimeError("the crawl fails after two commits")

    return FrameStream(chunks())


def test_each_commit_unit_is_committed_before_a_later_failure(
    postgres_resource: PostgresResource, instance: dg.DagsterInstance
) -> None:
    """Units are real transactions (not savepoints of one left open), so what a COMMIT closed
    survives the failure; and each unit's staging table is its own."""
    result = dg.materialize(
        [groups_then_failure],
        instance=instance,
        resources=_resources(postgres_resource),
        partition_key="1",
        raise_on_error=False,
    )
    assert not result.success
    rows = postgres_resource.execute("SELECT id FROM vk.groups ORDER BY id")
    assert [r[0] for r in rows] == [11, 12]
