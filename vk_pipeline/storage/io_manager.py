"""A Dagster IO manager that upserts asset outputs into PostgreSQL tables over COPY.

Asset definition metadata it reads:

- ``table``: target table (default: the last component of the asset key);
- ``write_mode``: ``"upsert"`` (default) or ``"replace"`` (delete the partition slice first);
- ``partition_expr``: column whose values are the asset's partition keys; writes and reads of a
  partitioned asset are limited to ``partition_expr = ANY(<partition keys>)``.

Input metadata: ``columns`` (list of column names) restricts what ``load_input`` reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dagster as dg
import pandas as pd
from psycopg import sql

from vk_pipeline.partition_metadata import add_partition_metadata, add_run_totals, is_range
from vk_pipeline.storage.catalog import (
    DEFAULT_CHUNK_ROWS,
    TableInfo,
    partition_filter,
    table_info,
    values_of_column,
)
from vk_pipeline.storage.resource import PostgresResource
from vk_pipeline.storage.write import TableWriter, WriteMode, WriteStats


@dataclass(frozen=True)
class TableWrite:
    """A partial-row upsert into another table of the same schema, yielded in an asset's output
    stream and written in the same transaction as the asset's own rows (e.g. comment-sync state
    of ``posts`` rows written atomically with the comments)."""

    table: str
    frame: pd.DataFrame


class Commit:
    """A marker in an output stream: commit everything written so far.

    What precedes it survives a later failure (or a kill) of the run; the writes between two
    markers are one transaction, so rows and the state that vouches for them (e.g. a post's
    comment-sync state) land together or not at all."""

    def __repr__(self) -> str:
        return "COMMIT"


COMMIT = Commit()

Item = pd.DataFrame | TableWrite | Commit


@dataclass
class FrameStream:
    """An asset output streamed chunk by chunk, plus metadata its producer fills while the
    stream is consumed (counts known only at the end). The IO manager writes the chunks, then
    adds ``metadata`` to the output metadata; on a key clash the producer's value wins."""

    chunks: Iterable[Item | None]
    metadata: dict[str, Any] = field(default_factory=dict)
    # When the producer read the rows (its crawl clock): the time of counter snapshots.
    observed_at: datetime | None = None

    def __iter__(self) -> Iterator[Item | None]:
        return iter(self.chunks)


def _iter_items(obj: Any) -> Iterator[Item]:
    if obj is None:
        return
    if isinstance(obj, (pd.DataFrame, TableWrite)):
        yield obj
        return
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes, dict)):
        for item in obj:
            if item is None:
                continue
            if not isinstance(item, (pd.DataFrame, TableWrite, Commit)):
                raise TypeError(
                    "output streams may hold DataFrames, TableWrites and COMMIT markers, "
                    f"got {type(item).__name__}"
                )
            yield item
        return
    raise TypeError(
        "PostgresIOManager writes a DataFrame, an iterable of DataFrames/TableWrites or None; "
        f"got {type(obj).__name__}"
    )


def _add_stats(total: WriteStats, part: WriteStats) -> None:
    total.rows += part.rows
    total.inserted += part.inserted
    total.updated += part.updated
    total.deleted += part.deleted
    total.seconds += part.seconds
    total.chunks += 1


def _table_for(asset_key: dg.AssetKey, metadata: dict[str, Any] | None) -> str:
    table = (metadata or {}).get("table")
    return str(table) if table else asset_key.path[-1]


class PostgresIOManager(dg.ConfigurableIOManager):
    """Stores DataFrame outputs in ``<schema>.<table>``; see the module doc for metadata keys.

    Output metadata: ``table``, ``rows``, ``inserted``, ``updated``, ``unchanged``, ``deleted``,
    ``seconds`` and ``dagster/row_count``, which is the number of rows in the written partition
    slice after the write (the whole table's count for an unpartitioned asset). Rows sent as
    TableWrites are reported as ``<table>_rows``, ``<table>_inserted``, ``<table>_updated``,
    ``<table>_unchanged``.
    """

    postgres: PostgresResource
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    def _partition(
        self, context: dg.OutputContext | dg.InputContext, metadata: dict[str, Any]
    ) -> tuple[str | None, list[str] | None]:
        if not context.has_asset_partitions:
            return None, None
        column = metadata.get("partition_expr")
        if not column:
            return None, None
        return str(column), list(context.asset_partition_keys)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            context.log.debug("PostgresIOManager: nothing to write")
            return
        metadata = dict(context.definition_metadata or {})
        table = _table_for(context.asset_key, metadata)
        mode = metadata.get("write_mode", "upsert")
        column, keys = self._partition(context, metadata)
        if mode == "replace" and context.has_asset_partitions and column is None:
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string()}: write_mode 'replace' on a partitioned "
                "asset needs a 'partition_expr' in its metadata, or it would replace the whole table"
            )
        items = _iter_items(obj)
        total = WriteStats(f"{self.postgres.schema_name}.{table}")
        extra_totals: dict[str, WriteStats] = {}
        with self.postgres.connection() as conn:
            # In a transaction of its own: left open, it would turn each unit's transaction
            # below into a savepoint, and a unit's commit would commit nothing.
            with conn.transaction():
                info = table_info(conn, table, self.postgres.schema_name)
            keys = _values(info, column, keys)
            first = True
            more = True
            while more:
                # One transaction per commit unit: a failure rolls back only the unit under way.
                with conn.transaction():
                    unit, extra, more = self._write_unit(
                        conn,
                        items,
                        table,
                        mode if first else "upsert",
                        column,
                        keys,
                        getattr(obj, "observed_at", None),
                    )
                _add_stats(total, unit)
                for name, stats in extra.items():
                    _add_stats(extra_totals.setdefault(name, WriteStats(name)), stats)
                first = False
            counts = self._slice_counts(conn, info, column, keys)
        out: dict[str, Any] = total.as_dict()
        out["commits"] = out.pop("chunks")
        out["write_mode"] = mode
        out["dagster/row_count"] = sum(counts.values())
        schema = column_schema(info)
        for name, stats in extra_totals.items():
            for key in ("rows", "inserted", "updated", "unchanged"):
                out[f"{name}_{key}"] = stats.as_dict()[key]
        if isinstance(obj, FrameStream):
            out.update(obj.metadata)
        if not (context.has_asset_partitions and is_range(context.step_context)):
            context.add_output_metadata({**out, "dagster/column_schema": schema})
            return
        # A range run records one materialization per partition, and output metadata would be
        # copied onto each: each carries its own slice's count instead, and the run's totals and
        # the column schema (the same for all, ~5 KB) go on the last one only: the asset's
        # latest materialization, which the UI shows first and whose column view it reads.
        last = context.asset_partition_keys[-1]
        if column:
            add_partition_metadata(
                context.step_context,
                (
                    (key, {"dagster/row_count": counts.get(str(key), 0)})
                    for key in context.asset_partition_keys
                ),
            )
        add_run_totals(
            context.step_context, {**out, "dagster/column_schema": schema}, last, context.asset_key
        )

    def _write_unit(
        self,
        conn: Any,
        items: Iterator[Item],
        table: str,
        mode: WriteMode,
        column: str | None,
        keys: list[str] | None,
        observed_at: datetime | None = None,
    ) -> tuple[WriteStats, dict[str, WriteStats], bool]:
        """Write items up to the next COMMIT (or the end); return the stats and whether more
        items may follow."""
        schema = self.postgres.schema_name
        main = TableWriter(
            conn,
            table,
            schema=schema,
            mode=mode,
            partition_column=column,
            partition_values=keys,
            chunk_rows=self.chunk_rows,
            observed_at=observed_at,
        ).begin()
        extra: dict[str, TableWriter] = {}
        more = False
        for item in items:
            if isinstance(item, Commit):
                if mode == "replace":
                    # Raised inside the unit's transaction, so the slice is left as it was.
                    raise dg.DagsterInvariantViolationError(
                        f"{table}: write_mode 'replace' cannot be committed in units "
                        "(a later unit would not replace the slice)"
                    )
                more = True
                break
            if isinstance(item, TableWrite):
                writer = extra.get(item.table)
                if writer is None:
                    writer = TableWriter(
                        conn,
                        item.table,
                        schema=schema,
                        chunk_rows=self.chunk_rows,
                        observed_at=observed_at,
                    ).begin()
                    extra[item.table] = writer
                writer.write(item.frame)
            else:
                main.write(item)
        return main.finish(), {name: w.finish() for name, w in extra.items()}, more

    def _slice_counts(
        self, conn: Any, info: TableInfo, column: str | None, keys: Sequence[str] | None
    ) -> dict[str, int]:
        """Rows per partition key in the written slice (one entry, "", without partitions)."""
        where = partition_filter(info, column, keys)
        if column is None:
            query = sql.SQL("SELECT '', count(*) FROM {} WHERE ").format(info.ident) + where
        else:
            query = (
                sql.SQL("SELECT {}::text, count(*) FROM {} WHERE ").format(
                    sql.Identifier(column), info.ident
                )
                + where
                + sql.SQL(" GROUP BY 1")
            )
        return {str(k): int(n) for k, n in conn.execute(query).fetchall()}

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        upstream = context.upstream_output
        upstream_meta = dict((upstream.definition_metadata if upstream else None) or {})
        table = _table_for(context.asset_key, upstream_meta)
        columns = (context.definition_metadata or {}).get("columns")
        column, keys = self._partition(context, upstream_meta)
        if column is not None:
            with self.postgres.connection() as conn:
                keys = _values(table_info(conn, table, self.postgres.schema_name), column, keys)
        return self.postgres.read_frame(
            table, columns=columns, partition_column=column, partition_values=keys
        )


def _values(info: TableInfo, column: str | None, keys: list[str] | None) -> list[str] | None:
    if column is None or keys is None or column not in info.columns:
        return keys
    return values_of_column(info.columns[column], keys)


def column_schema(info: TableInfo) -> dg.TableSchema:
    """The table's columns as the catalog has them, for the UI's column view."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                c.name,
                c.type_name,
                constraints=dg.TableColumnConstraints(nullable=not c.not_null),
            )
            for c in info.columns.values()
        ],
        constraints=dg.TableConstraints(
            other=[f"primary key ({', '.join(info.primary_key)})"] if info.primary_key else []
        ),
    )
