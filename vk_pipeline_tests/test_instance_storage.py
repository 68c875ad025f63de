"""Dagster's storage as dagster.yaml configures it: pooled connections that survive a dropped
connection, and a run's per-partition planned events written in one batch, with the same
partition status in the UI as dagster-postgres's own storage gives."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import sqlalchemy.pool
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from vk_pipeline.instance_storage import PooledEventLogStorage
from vk_pipeline.local import PROJECT_ROOT, sqlalchemy_postgres_url
from vk_pipeline.testing.crawl import range_tags
from vk_pipeline.testing.databases import create_database, drop_database

PARTS = dg.DynamicPartitionsDefinition(name="instance_storage_test")
KEYS = [str(k) for k in range(1, 41)]


@dg.asset(partitions_def=PARTS, backfill_policy=dg.BackfillPolicy.multi_run(100))
def first(context: dg.AssetExecutionContext) -> None:
    if os.environ.get("INSTANCE_STORAGE_TEST_FAIL"):
        raise RuntimeError("failing on purpose")


@dg.asset(partitions_def=PARTS, deps=[first], backfill_policy=dg.BackfillPolicy.multi_run(100))
def second(context: dg.AssetExecutionContext) -> None:
    pass


@pytest.fixture
def instance(pg_admin_url: str, tmp_path: Path, monkeypatch) -> Iterator[dg.DagsterInstance]:
    """An instance loaded from the project's dagster.yaml, on a database of its own."""
    url = create_database(pg_admin_url, "vkt_instance")
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", sqlalchemy_postgres_url(url))
    try:
        with dg.DagsterInstance.from_config(str(tmp_path)) as inst:
            inst.add_dynamic_partitions(PARTS.name, KEYS)
            yield inst
    finally:
        drop_database(pg_admin_url, url)


def planned_rows(instance: dg.DagsterInstance, run_id: str) -> int:
    return sum(
        1
        for e in instance.all_logs(run_id)
        if e.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    )


def status(instance: dg.DagsterInstance, asset: dg.AssetsDefinition) -> tuple[set[str], set[str]]:
    value = get_and_update_asset_status_cache_value(instance, asset.key, PARTS)
    assert value is not None
    failed = value.deserialize_failed_partition_subsets(PARTS).get_partition_keys()
    done = value.deserialize_materialized_partition_subsets(PARTS).get_partition_keys()
    return set(done), set(failed)


def test_the_storage_pools_its_connections(instance: dg.DagsterInstance):
    storage = instance.event_log_storage
    assert isinstance(storage, PooledEventLogStorage)
    assert isinstance(storage._engine.pool, sqlalchemy.pool.QueuePool)
    # Loading the instance turned on Dagster's batched event writes in this process.
    assert int(os.environ["DAGSTER_EVENT_BATCH_SIZE"]) > 0


def test_a_ranged_run_keeps_every_planned_event_and_the_ui_status(instance, monkeypatch):
    ok = dg.materialize([first, second], instance=instance, tags=range_tags(KEYS))
    assert ok.success
    # One planned event per partition and asset, as dagster-postgres writes them (batched).
    assert planned_rows(instance, ok.run_id) == 2 * len(KEYS)
    assert status(instance, first) == (set(KEYS), set())

    monkeypatch.setenv("INSTANCE_STORAGE_TEST_FAIL", "1")
    failed = dg.materialize(
        [first, second], instance=instance, tags=range_tags(KEYS[:10]), raise_on_error=False
    )
    assert not failed.success
    # The partitions of the failed run show as failed, as with dagster-postgres's storage.
    assert status(instance, first) == (set(KEYS), set(KEYS[:10]))
    assert status(instance, second)[1] == set(KEYS[:10])


def test_a_connection_the_server_dropped_is_replaced(instance, pg_admin_url):
    assert dg.materialize([first], instance=instance, tags=range_tags(KEYS[:2])).success
    dbname = instance.event_log_storage.postgres_url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
            (dbname,),
        ).fetchone()
    assert killed and killed[0] >= 1  # the pool held a connection open
    assert dg.materialize([first], instance=instance, tags=range_tags(KEYS[2:4])).success
