"""Dagster's own storage (runs, event logs, schedules) on Postgres, with pooled connections.

dagster-postgres opens a new connection for every statement (SQLAlchemy's NullPool, "to prevent
accumulating connections per DagsterInstance"), and a run writes an event per step, per partition
and per check: a refresh of 50 groups spent half its time connecting (`benchmarks/refresh_scale.py`
profiles it). This subclass keeps a small pool per storage and process instead: one connection
held, a few more while busy, each checked before use (`pool_pre_ping`), so a connection the
server dropped (a restart, a blip) is replaced rather than handed out.

It also turns on Dagster's batched event writes (`DAGSTER_EVENT_BATCH_SIZE`, read by the instance
in every process that loads this storage — webserver, daemon, code server and run workers alike):
the materializations of a ranged run, one per group and asset, go to the event log in one
statement. dagster-postgres batches materializations only; the "planned" events a run writes at
submission (one per group and asset: they are what the UI shows as in progress, and as failed when
the run fails) fell back to a statement and a transaction each, which made submitting a refresh of
1,000 groups take minutes. They are batched the same way here: one insert, and each asset's row
in the asset index updated once, from its last event, as dagster-postgres does for
materializations. (Dagster's other way out, one planned event per asset with a subset of
partitions, loses the in-progress and failed status of each partition in the UI.) A deployment
that sets the variable itself keeps its own value.

Check evaluations are the third kind of event a ranged run writes per group (seven per group: the
checks report each partition's result), and Dagster offers no batch for them: each is an insert,
a NOTIFY and an update of its planned row in `asset_check_executions`, three round trips. With
the target lookup (`run_materializations` below), the check steps took 71 s of a 124 s
500-group refresh run (`benchmarks/refresh_scale.py`), 5.6 s after both changes. This storage
holds a run's evaluations as they come and writes them together (one insert into the event log,
one update of their planned rows) before it writes any other event, so the event log keeps the
order they were logged in, and the check step's own output and success events come after them as
before. A run's log lines (a progress line per group: ~700 in a 500-group refresh run, each its
own insert and NOTIFY) are held the same way, for a second at most, so the UI still shows them
as they come. Held events are written when 1,000 are held, before any other event, a second
after a log line was held, and when the storage is disposed; a worker killed mid-step loses the
ones it held, with the step they belong to, which the retry runs again.

A run's planned check rows (one per check and partition, written at submission) each carry
their own partition's planned event: Dagster stores the whole range's (~6 KB for 500 groups)
in each.

Configured in `dagster.yaml` as `storage: custom: {module: vk_pipeline.instance_storage, class:
PooledPostgresStorage, config: {postgres_url: ...}}`; the config is dagster-postgres's own.
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
import weakref
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import dagster as dg
import sqlalchemy as db
import sqlalchemy.pool as db_pool
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluation,
    AssetCheckEvaluationPlanned,
)
from dagster._core.event_api import EventLogEntry
from dagster._core.events import DagsterEventType
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.config import PostgresStorageConfig
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    SqlEventLogStorageTable,
)
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
)
from dagster_shared.record import copy
from dagster_shared.serdes import serialize_value
from psycopg2.extras import execute_values

# Events held before one write; a ranged run's materializations of one asset are written together.
EVENT_BATCH_SIZE = "1000"
os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)

# Check evaluations and log lines held before they are written together (module docstring), and
# how long a log line is held at most.
HELD_EVENTS = 1000
HELD_LOG_SECONDS = 1.0

# The event kinds a batch of one kind is inserted for here (`_insert_events`); their asset index
# rows are updated once per asset, from its last event, as dagster-postgres does for
# materializations.
INSERTED_TOGETHER = {
    DagsterEventType.ASSET_MATERIALIZATION,
    DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    DagsterEventType.ASSET_OBSERVATION,
}
EVENT_COLUMNS = ("run_id", "event", "dagster_event_type", "timestamp", "step_key", "asset_key",
                 "partition")  # fmt: skip
INSERT_EVENTS = (
    f"INSERT INTO {SqlEventLogStorageTable.name} ({', '.join(EVENT_COLUMNS)})"
    " VALUES %s RETURNING id"
)

# Per storage and process: one connection kept, a few more while several threads write; with
# three storages a run worker holds three connections while idle.
POOL_SIZE = 1
MAX_OVERFLOW = 4
# Recycled before a server or proxy closes them for idling.
POOL_RECYCLE_SECONDS = 1800


def _pooled(storage: Any) -> None:
    storage._engine.dispose()
    storage._engine = create_pg_engine(
        storage.postgres_url,
        storage._token_provider,
        isolation_level="AUTOCOMMIT",
        poolclass=db_pool.QueuePool,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        pool_pre_ping=True,
        pool_recycle=POOL_RECYCLE_SECONDS,
    )


class PooledRunStorage(PostgresRunStorage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _pooled(self)


# Each partition's planned row is updated from its evaluation, matched as Dagster matches one
# (asset, check, run, partition); the partitions that had no planned row come back and are inserted.
# One array parameter per column of `_execution_row` but `run_id`, which all share.
UPDATE_EVALUATIONS = f"""
    UPDATE {AssetCheckExecutionsTable.name} AS a
    SET execution_status = v.execution_status, evaluation_event = v.evaluation_event,
        evaluation_event_timestamp = v.evaluation_event_timestamp,
        evaluation_event_storage_id = v.evaluation_event_storage_id,
        materialization_event_storage_id = v.materialization_event_storage_id
    FROM unnest(CAST(:asset_key AS text[]), CAST(:check_name AS text[]),
                CAST(:partition AS text[]), CAST(:execution_status AS text[]),
                CAST(:evaluation_event AS text[]), CAST(:evaluation_event_timestamp AS timestamp[]),
                CAST(:evaluation_event_storage_id AS bigint[]),
                CAST(:materialization_event_storage_id AS bigint[]))
         AS v(asset_key, check_name, "partition", execution_status, evaluation_event,
              evaluation_event_timestamp, evaluation_event_storage_id,
              materialization_event_storage_id)
    WHERE a.asset_key = v.asset_key AND a.check_name = v.check_name AND a.run_id = :run_id
      AND a."partition" = v."partition"
    RETURNING v.evaluation_event_storage_id
"""


def _execution_row(event: EventLogEntry, row: dict[str, Any], event_id: int) -> dict[str, Any]:
    """The `asset_check_executions` row of one evaluation; `row` is its event log row, whose
    serialization Dagster stores again as `evaluation_event`."""
    evaluation: AssetCheckEvaluation = event.get_dagster_event().event_specific_data
    status = (
        AssetCheckExecutionRecordStatus.SUCCEEDED
        if evaluation.passed
        else AssetCheckExecutionRecordStatus.FAILED
    )
    target = evaluation.target_materialization_data
    return {
        "asset_key": evaluation.asset_key.to_string(),
        "check_name": evaluation.check_name,
        "partition": evaluation.partition,
        "run_id": event.run_id,
        "execution_status": status.value,
        "evaluation_event": row["event"],
        "evaluation_event_timestamp": row["timestamp"],
        "evaluation_event_storage_id": event_id,
        "materialization_event_storage_id": target.storage_id if target else None,
    }


def _planned_for(event: EventLogEntry, key: str) -> EventLogEntry:
    """`event` (a check's planned evaluation over a range) narrowed to the partition `key`."""
    planned: AssetCheckEvaluationPlanned = event.get_dagster_event().event_specific_data
    subset = planned.partitions_subset
    assert subset is not None
    narrowed = copy(planned, partitions_subset=subset.empty_subset().with_partition_keys([key]))
    return event._replace(
        dagster_event=event.get_dagster_event()._replace(event_specific_data=narrowed)
    )


def _held(event: EventLogEntry) -> bool:
    """What is held and written in batches: a run's check evaluations and its log lines."""
    return bool(event.run_id) and (not event.is_dagster_event or _held_evaluation(event))


def _held_evaluation(event: EventLogEntry) -> bool:
    """A run's check evaluation of one partition: what the batched path writes."""
    dagster_event = event.dagster_event
    return (
        dagster_event is not None
        and dagster_event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        and bool(event.run_id)
        and dagster_event.event_specific_data.partition is not None
    )


class PooledEventLogStorage(PostgresEventLogStorage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _pooled(self)
        self._held: list[EventLogEntry] = []
        self._held_lock = threading.RLock()
        self._timer: threading.Timer | None = None
        # A process that ends without disposing its instance still writes what it held.
        ref = weakref.ref(self)
        atexit.register(lambda: (s := ref()) is not None and s.write_held())

    def store_event(self, event: EventLogEntry) -> None:
        with self._held_lock:
            if _held(event):
                if self._held and self._held[0].run_id != event.run_id:
                    self.write_held()
                self._held.append(event)
                if len(self._held) >= HELD_EVENTS:
                    self.write_held()
                elif not event.is_dagster_event and self._timer is None:
                    # A log line shows in the UI within a second even if nothing follows it.
                    self._timer = threading.Timer(HELD_LOG_SECONDS, self.write_held)
                    self._timer.daemon = True
                    self._timer.start()
                return
            self.write_held()
            super().store_event(event)

    def write_held(self) -> None:
        """Writes the held events in the order they came: one insert into the event log, and for
        the check evaluations among them one update of their planned rows."""
        with self._held_lock:
            events, self._held = self._held, []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not events:
                return
            rows, ids = self._insert_events(events)
            executions = [
                _execution_row(event, row, event_id)
                for event, row, event_id in zip(events, rows, ids, strict=True)
                if _held_evaluation(event)
            ]
            if not executions:
                return
            # Column-wise, as the update's arrays; `run_id` is the run's (one run is held at a time).
            params = {k: [e[k] for e in executions] for k in executions[0]}
            params["run_id"] = events[0].run_id
            with self.index_transaction() as conn:
                updated = {int(row[0]) for row in conn.execute(db.text(UPDATE_EVALUATIONS), params)}
                missing = [e for e in executions if e["evaluation_event_storage_id"] not in updated]
                if missing:
                    # No planned row (Dagster inserts one then, too).
                    conn.execute(AssetCheckExecutionsTable.insert(), missing)

    def _store_asset_check_evaluation_planned(
        self, event: EventLogEntry, event_id: int | None
    ) -> None:
        """One planned row per partition, as Dagster writes them, but each row's event names its own
        partition. Dagster stores the run's whole planned event (a subset of every partition of
        the range) in every row: 500 serializations of a ~6 KB event per check, 7 checks, written
        at submission of every 500-group run (`create_run` of a 505-group run: 6.1 -> 3.0 s)."""
        planned: AssetCheckEvaluationPlanned = event.get_dagster_event().event_specific_data
        subset = planned.partitions_subset
        if subset is None or len(subset) <= 1:
            super()._store_asset_check_evaluation_planned(event, event_id)
            return
        timestamp = self._event_insert_timestamp(event)
        asset_key = planned.asset_key.to_string()
        rows = [
            {
                "asset_key": asset_key,
                "check_name": planned.check_name,
                "partition": key,
                "run_id": event.run_id,
                "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
                "evaluation_event": serialize_value(_planned_for(event, key)),
                "evaluation_event_timestamp": timestamp,
                "evaluation_event_storage_id": event_id,
            }
            for key in subset.get_partition_keys()
        ]
        with self.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.insert(), rows)

    def dispose(self) -> None:
        self.write_held()
        super().dispose()

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Each stretch of events of one kind written together, in order. dagster-postgres
        batches a batch of one kind only, and a run's submission sends its planned
        materializations and planned checks 1,000 to a batch: the batch holding both kinds went
        event by event (552 single inserts in a 505-group run's `create_run`, 2.8 of a profiled
        30 s)."""
        self.write_held()
        for kind, same in itertools.groupby(events, lambda e: e.get_dagster_event().event_type):
            if kind in INSERTED_TOGETHER:
                self._store_together(list(same))
            else:
                super().store_event_batch(list(same))

    def _store_together(self, events: list[EventLogEntry]) -> None:
        _rows, ids = self._insert_events(events)
        last: dict[Any, tuple[EventLogEntry, int]] = {}
        for event, event_id in zip(events, ids, strict=True):
            last[event.get_dagster_event().asset_key] = (event, event_id)
        with self.index_transaction() as conn:
            self._store_asset_event_tags(conn, events, ids)
            for event, event_id in last.values():
                self._store_asset_event(conn, event, event_id)

    def _insert_events(
        self, events: Sequence[EventLogEntry]
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """The events' rows and their ids, in order, from one `INSERT ... VALUES ... RETURNING`
        rendered by psycopg2 (`execute_values`). SQLAlchemy's `insert().values(rows)`, which
        Dagster uses, compiles a bind parameter per cell: ~90,000 in a 500-group run, 2 s of a
        profiled run's 37 (`benchmarks/refresh_profile.py`)."""
        rows = [self._event_to_row(event) for event in events]
        values = [tuple(row[column] for column in EVENT_COLUMNS) for row in rows]
        with self._connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                # One page: the rows come back in the order of VALUES, as Dagster's own insert
                # relies on.
                returned = execute_values(
                    cursor, INSERT_EVENTS, values, page_size=len(values), fetch=True
                )
            finally:
                cursor.close()
        return rows, [int(row[0]) for row in returned]


class PooledScheduleStorage(PostgresScheduleStorage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _pooled(self)


class PooledPostgresStorage(DagsterPostgresStorage):
    """`DagsterPostgresStorage` whose three storages pool their connections."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
    ) -> None:
        # The parent's constructor would build NullPool storages first: set up what it sets up,
        # with pooled storages, and skip it.
        self.postgres_url = postgres_url
        self.should_autocreate_tables = should_autocreate_tables
        self._inst_data = inst_data
        self._run_storage = PooledRunStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        self._event_log_storage = PooledEventLogStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        self._schedule_storage = PooledScheduleStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        DagsterStorage.__init__(self)

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: PostgresStorageConfig
    ) -> PooledPostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )


def run_materializations(
    instance: dg.DagsterInstance, run_id: str, asset_key: dg.AssetKey
) -> dict[str, tuple[int, float]]:
    """Partition → (storage id, timestamp) of each materialization of `asset_key` in the run.

    On SQL storage this reads the event log's own columns: the public reads deserialize every
    event with its metadata, which took 20 s of a 500-group run's check steps."""
    storage = instance.event_log_storage
    found: dict[str, tuple[int, float]] = {}
    if isinstance(storage, SqlEventLogStorage):
        table = SqlEventLogStorageTable
        query = db.select(table.c.id, table.c.partition, table.c.timestamp).where(
            table.c.run_id == run_id,
            table.c.asset_key == asset_key.to_string(),
            table.c.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION.value,
        )
        with storage.index_connection() as conn:
            for storage_id, partition, stamp in conn.execute(query):
                if partition is not None:
                    # Stored as naive UTC (`_event_insert_timestamp`).
                    found[partition] = (int(storage_id), stamp.replace(tzinfo=UTC).timestamp())
        return found
    cursor = None
    while True:
        page = instance.get_records_for_run(
            run_id, cursor=cursor, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=10_000
        )
        for record in page.records:
            event = record.event_log_entry.dagster_event
            if event is not None and event.asset_key == asset_key and event.partition is not None:
                found[event.partition] = (record.storage_id, record.timestamp)
        if not page.has_more:
            return found
        cursor = page.cursor
