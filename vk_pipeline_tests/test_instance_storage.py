"""Dagster's storage as dagster.yaml configures it: pooled connections that survive a dropped
connection, and a run's per-partition planned events and check evaluations written in batches,
with the same partition and check status in the UI as dagster-postgres's own storage gives."""

import logging
import os
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import sqlalchemy.pool
from dagster._core.event_api import EventLogEntry, PartitionKeyFilter
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_shared.serdes import deserialize_value

from vk_pipeline.instance_storage import PooledEventLogStorage, run_materializations
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


with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)  # partitioned check specs
    CHECK_SPECS = [
        dg.AssetCheckSpec(name, asset=first, partitions_def=PARTS) for name in ("odd", "small")
    ]


@dg.asset(partitions_def=PARTS, backfill_policy=dg.BackfillPolicy.multi_run(100))
def talkative(context: dg.AssetExecutionContext) -> None:
    """A progress line per partition, as the crawl steps log one per group."""
    for key in context.partition_keys:
        context.log.info(f"partition {key} done")


@dg.multi_asset_check(specs=CHECK_SPECS, can_subset=True)
def first_checks(
    context: dg.AssetCheckExecutionContext,
) -> Iterable[dg.AssetCheckEvaluation | dg.Output]:
    """Each partition's own result, as vk_pipeline's checks report them."""
    for name, passes in (("odd", lambda k: k % 2 == 1), ("small", lambda k: k < 30)):
        for key in context.op_execution_context.partition_keys:
            yield dg.AssetCheckEvaluation(
                asset_key=first.key,
                check_name=name,
                passed=passes(int(key)),
                partition=key,
                metadata={"key": int(key)},
            )
        yield dg.Output(None, output_name=f"first_{name}")


def _instance(
    admin_url: str, home: Path, storage: str | None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """An instance loaded from the project's dagster.yaml (or with `storage` in its place), on a
    database of its own."""
    url = create_database(admin_url, "vkt_instance")
    home.mkdir(exist_ok=True)
    text = (PROJECT_ROOT / "dagster.yaml").read_text()
    if storage is not None:
        text = (
            text.split("storage:", 1)[0]
            + storage
            + "\nrun_coordinator:"
            + text.split("\nrun_coordinator:", 1)[1]
        )
    (home / "dagster.yaml").write_text(text)
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", sqlalchemy_postgres_url(url))
    try:
        with dg.DagsterInstance.from_config(str(home)) as inst:
            inst.add_dynamic_partitions(PARTS.name, KEYS)
            yield inst
    finally:
        drop_database(admin_url, url)


@pytest.fixture
def instance(pg_admin_url: str, tmp_path: Path, monkeypatch) -> Iterator[dg.DagsterInstance]:
    yield from _instance(pg_admin_url, tmp_path / "pooled", None, monkeypatch)


@pytest.fixture
def stock_instance(pg_admin_url: str, tmp_path: Path, monkeypatch) -> Iterator[dg.DagsterInstance]:
    """The same instance on dagster-postgres's own storage."""
    storage = "storage:\n  postgres:\n    postgres_url:\n      env: DAGSTER_POSTGRES_URL\n"
    yield from _instance(pg_admin_url, tmp_path / "stock", storage, monkeypatch)


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


def check_status(instance: dg.DagsterInstance) -> dict[tuple[str, str], tuple[str, bool]]:
    """Per check and partition: the status the UI shows, and whether it targets the partition's
    latest materialization."""
    infos = instance.event_log_storage.get_asset_check_partition_info(
        [spec.key for spec in CHECK_SPECS]
    )
    return {
        (i.check_key.name, str(i.partition_key)): (i.latest_execution_status.value, i.is_current)
        for i in infos
    }


def test_check_evaluations_are_written_together_as_dagster_postgres_writes_them(
    instance, stock_instance
):
    assert not isinstance(stock_instance.event_log_storage, PooledEventLogStorage)
    runs = {}
    for inst in (instance, stock_instance):
        for keys in (KEYS, KEYS[:10]):  # a later run over some partitions supersedes the first
            result = dg.materialize([first, first_checks], instance=inst, tags=range_tags(keys))
            assert result.success
        runs[inst] = result.run_id
    status = check_status(instance)
    assert status == check_status(stock_instance)
    assert len(status) == 2 * len(KEYS)
    assert status[("odd", "3")][0] == "SUCCEEDED"
    assert status[("odd", "4")][0] == "FAILED"
    assert status[("small", "35")][0] == "FAILED"

    # In the event log in the order they were logged, each check's before its output.
    logs = [e for e in instance.all_logs(runs[instance]) if e.step_key == "first_checks"]
    seen = []
    for entry in logs:
        event = entry.dagster_event
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            seen.append((event.event_specific_data.check_name, event.event_specific_data.partition))
        elif event.event_type in (
            dg.DagsterEventType.STEP_OUTPUT,
            dg.DagsterEventType.STEP_SUCCESS,
        ):
            seen.append(
                (
                    event.event_type_value,
                    event.step_output_data.output_name if event.is_successful_output else None,
                )
            )
    expected = []
    for name in ("odd", "small"):
        expected += [(name, k) for k in KEYS[:10]] + [("STEP_OUTPUT", f"first_{name}")]
    assert seen == [*expected, ("STEP_SUCCESS", None)]
    # Each record points at its own evaluation event, as Dagster's single writes do.
    record = instance.event_log_storage.get_asset_check_execution_history(
        CHECK_SPECS[0].key, limit=1, partition_filter=PartitionKeyFilter(key="7")
    )[0]  # fmt: skip
    assert record.event.dagster_event.event_specific_data.partition == "7"
    assert record.event.dagster_event.event_specific_data.metadata["key"].value == 7


def test_a_runs_materializations_are_read_from_the_event_log_columns(instance):
    result = dg.materialize([first], instance=instance, tags=range_tags(KEYS[:5]))
    records = instance.fetch_materializations(first.key, limit=100).records
    expected = {r.partition_key: (r.storage_id, r.timestamp) for r in records}
    found = run_materializations(instance, result.run_id, first.key)
    assert found.keys() == expected.keys() == set(KEYS[:5])
    for key, (storage_id, stamp) in found.items():
        assert storage_id == expected[key][0]
        assert stamp == pytest.approx(expected[key][1], abs=1e-3)
    assert run_materializations(instance, result.run_id, dg.AssetKey("second")) == {}


def test_a_submitted_runs_checks_show_as_planned_per_partition(instance, stock_instance):
    """The planned rows a run's submission writes: one per check and partition, as with
    dagster-postgres, each row's event naming its own partition rather than the whole range."""
    job = dg.Definitions(
        assets=[first], asset_checks=[first_checks], jobs=[dg.define_asset_job("checked")]
    ).resolve_job_def("checked")
    for inst in (instance, stock_instance):
        inst.create_run_for_job(job, tags=range_tags(KEYS))
    status = check_status(instance)
    assert status == check_status(stock_instance)
    assert len(status) == 2 * len(KEYS)
    assert {s for s, _ in status.values()} == {"PLANNED"}
    for inst, expected in ((instance, {"7"}), (stock_instance, set(KEYS))):
        record = inst.event_log_storage.get_asset_check_execution_history(
            CHECK_SPECS[1].key, limit=1, partition_filter=PartitionKeyFilter(key="7")
        )[0]  # fmt: skip
        planned = record.event.dagster_event.event_specific_data
        assert record.status.value == "PLANNED"
        assert set(planned.partitions_subset.get_partition_keys()) == expected


def test_a_runs_log_lines_are_written_together_in_the_order_they_came(instance):
    result = dg.materialize([talkative], instance=instance, tags=range_tags(KEYS))
    assert result.success
    kinds = []
    for entry in instance.all_logs(result.run_id):
        if entry.dagster_event is None:
            kinds.append(entry.user_message)
        elif entry.step_key == "talkative":
            kinds.append(entry.dagster_event.event_type_value)
    lines = [f"partition {k} done" for k in KEYS]
    # Every line, each once, after the step's start and before its materializations.
    assert [k for k in kinds if k.startswith("partition")] == lines
    start, first_line = kinds.index("STEP_START"), kinds.index(lines[0])
    assert start < first_line < kinds.index(lines[-1]) < kinds.index("ASSET_MATERIALIZATION")


def test_a_held_log_line_is_written_within_a_second_without_another_event(instance):
    storage = instance.event_log_storage
    run = dg.materialize([first], instance=instance, tags=range_tags(KEYS[:1]))
    entry = EventLogEntry(
        error_info=None,
        level=logging.INFO,
        user_message="a lone line",
        run_id=run.run_id,
        timestamp=time.time(),
    )
    storage.store_event(entry)
    assert storage._held == [entry]  # held, not yet written
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(e.user_message == "a lone line" for e in instance.all_logs(run.run_id)):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the held line was never written")
    assert storage._held == []


def test_batched_rows_are_indexed_under_their_own_ids(instance):
    """Events written together get their ids back in order: the asset index's latest
    materialization, the planned rows and the check executions each point at the row of their own
    partition."""
    result = dg.materialize([first, second, first_checks], instance=instance, tags=range_tags(KEYS))
    assert result.success
    storage = instance.event_log_storage
    with storage._connect() as conn:
        rows = conn.execute(
            sqlalchemy.text("SELECT id, event FROM event_logs WHERE run_id = :run"),
            {"run": result.run_id},
        ).fetchall()
    partition_of = {}  # event id -> (type, partition) of the event stored under it
    for event_id, text in rows:
        event = deserialize_value(text, EventLogEntry).dagster_event
        if event is not None:
            partition = event.partition or getattr(event.event_specific_data, "partition", None)
            partition_of[int(event_id)] = (event.event_type_value, partition)
    for asset in (first, second):
        [record] = instance.get_asset_records([asset.key])
        latest = record.asset_entry.last_materialization_record
        assert latest is not None
        assert latest.storage_id == max(
            r.storage_id for r in instance.fetch_materializations(asset.key, limit=100).records
        )
        key = latest.event_log_entry.dagster_event.partition
        assert partition_of[latest.storage_id] == ("ASSET_MATERIALIZATION", key)
    for key in ("1", "17", "40"):
        [planned] = instance.fetch_planned_materializations(
            dg.AssetRecordsFilter(asset_key=first.key, asset_partitions=[key]), limit=1
        ).records
        assert partition_of[planned.storage_id] == ("ASSET_MATERIALIZATION_PLANNED", key)
    with storage._connect() as conn:
        executions = conn.execute(
            sqlalchemy.text(
                "SELECT partition, evaluation_event_storage_id FROM asset_check_executions"
                " WHERE run_id = :run"
            ),
            {"run": result.run_id},
        ).fetchall()
    assert len(executions) == len(CHECK_SPECS) * len(KEYS)
    for key, event_id in executions:
        assert partition_of[event_id] == ("ASSET_CHECK_EVALUATION", key)


def test_a_submission_writes_planned_materializations_and_checks_in_batches(instance, monkeypatch):
    """A run's planned materializations share their last batch with its planned checks; neither
    kind is then written one event at a time."""
    job = dg.Definitions(
        assets=[first], asset_checks=[first_checks], jobs=[dg.define_asset_job("checked")]
    ).resolve_job_def("checked")
    single: list[str] = []
    store_event = PostgresEventLogStorage.store_event

    def counted(self: PostgresEventLogStorage, event: EventLogEntry) -> None:
        single.append(event.dagster_event_type.value)
        store_event(self, event)

    monkeypatch.setattr(PostgresEventLogStorage, "store_event", counted)
    run = instance.create_run_for_job(job, tags=range_tags(KEYS))
    assert "ASSET_MATERIALIZATION_PLANNED" not in single
    assert planned_rows(instance, run.run_id) == len(KEYS)
    assert {s for s, _ in check_status(instance).values()} == {"PLANNED"}
    assert len(check_status(instance)) == 2 * len(KEYS)
