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

Configured in `dagster.yaml` as `storage: custom: {module: vk_pipeline.instance_storage, class:
PooledPostgresStorage, config: {postgres_url: ...}}`; the config is dagster-postgres's own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import sqlalchemy.pool as db_pool
from dagster._core.event_api import EventLogEntry
from dagster._core.events import DagsterEventType
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.config import PostgresStorageConfig
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
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

# Events held before one write; a ranged run's materializations of one asset are written together.
EVENT_BATCH_SIZE = "1000"
os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)

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


class PooledEventLogStorage(PostgresEventLogStorage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _pooled(self)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        planned: list[EventLogEntry] = []
        rest: list[EventLogEntry] = []
        for event in events:
            kind = event.get_dagster_event().event_type
            (planned if kind == DagsterEventType.ASSET_MATERIALIZATION_PLANNED else rest).append(
                event
            )
        if planned:
            with self._connect() as conn:
                result = conn.execute(
                    self.prepare_insert_event_batch(planned).returning(SqlEventLogStorageTable.c.id)
                )
                ids = [int(row[0]) for row in result.fetchall()]
            last: dict[Any, tuple[EventLogEntry, int]] = {}
            for event, event_id in zip(planned, ids, strict=True):
                last[event.get_dagster_event().asset_key] = (event, event_id)
            with self.index_transaction() as conn:
                self._store_asset_event_tags(conn, planned, ids)
                for event, event_id in last.values():
                    self._store_asset_event(conn, event, event_id)
        if rest:
            super().store_event_batch(rest)


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
