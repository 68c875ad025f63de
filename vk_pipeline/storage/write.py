"""Bulk writes of pandas DataFrames into one table: COPY straight in, or stage and upsert.

A slice that is empty (or was just deleted by ``replace``) is filled by COPY straight into the
table; otherwise each chunk is COPYed into a temporary stage and merged by one set-based
``INSERT ... ON CONFLICT``, which counts what was inserted and what changed. The target's columns, types and primary key come from the catalog.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pandas as pd
import psycopg
from psycopg import sql

from vk_pipeline.storage.catalog import (
    DEFAULT_CHUNK_ROWS,
    INT_OIDS,
    TEXT_OIDS,
    ColumnInfo,
    StorageError,
    TableInfo,
    partition_filter,
    table_info,
)
from vk_pipeline.storage.encode import copy_into, encode_column
from vk_pipeline.storage.history import HISTORY, History, history_ctes, old_rows, returning

WriteMode = Literal["upsert", "replace"]

# Columns the storage layer maintains itself; values sent by a writer are ignored so that a
# frame read with read_frame() can be written back unchanged.
MANAGED_COLUMNS = frozenset({"first_seen_at", "last_changed_at"})


@dataclass
class WriteStats:
    """What one write did to one table. rows counts distinct keys sent (duplicates of a key in
    one chunk collapse, last wins); unchanged = rows - inserted - updated."""

    table: str
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    seconds: float = 0.0
    chunks: int = 0

    @property
    def unchanged(self) -> int:
        return self.rows - self.inserted - self.updated

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "seconds": round(self.seconds, 3),
            "chunks": self.chunks,
        }


@dataclass
class TableWriter:
    """Writes a stream of DataFrames into one table inside the caller's transaction.

    Use ``begin()`` once, ``write(frame)`` per frame, ``finish()`` for the stats. The caller owns
    the transaction (``write_frames`` opens one), so several writers can share it atomically.
    """

    conn: psycopg.Connection[Any]
    table: str
    schema: str = "vk"
    mode: WriteMode = "upsert"
    partition_column: str | None = None
    partition_values: Sequence[Any] | None = None
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    # When the rows were read at the source, for counter snapshots (storage/history.py).
    observed_at: datetime | None = None
    info: TableInfo = field(init=False)
    stats: WriteStats = field(init=False)
    _direct: bool = field(init=False, default=False)
    _history: History | None = field(init=False, default=None)
    _stages: dict[tuple[str, ...], sql.Identifier] = field(init=False, default_factory=dict)
    _started: float = field(init=False, default=0.0)

    def begin(self) -> TableWriter:
        if self.mode not in ("upsert", "replace"):
            raise StorageError(f"unknown write mode {self.mode!r}")
        self._started = time.perf_counter()
        self.info = table_info(self.conn, self.table, self.schema)
        self.stats = WriteStats(self.info.qualified_name)
        if self.partition_column is None and self.partition_values is not None:
            raise StorageError("partition_values given without partition_column")
        where = partition_filter(self.info, self.partition_column, self.partition_values)
        with self.conn.cursor() as cur:
            if self.mode == "replace":
                cur.execute(sql.SQL("DELETE FROM {} WHERE ").format(self.info.ident) + where)
                self.stats.deleted = cur.rowcount
                self._direct = True
            else:
                # An empty slice cannot conflict, so COPY can go straight into the table.
                cur.execute(
                    sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {} WHERE ").format(self.info.ident)
                    + where
                    + sql.SQL(")")
                )
                row = cur.fetchone()
                self._direct = bool(row and row[0])
        self._history = HISTORY.get(self.table)
        if self._history is not None and self._history.snapshots is not None:
            # A new row's first snapshot is written by the upsert's CTE; a COPY straight into
            # the table would skip it.
            self._direct = False
        self.stats.seconds = time.perf_counter() - self._started
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if frame is None or len(frame) == 0:
            return
        for start in range(0, len(frame), self.chunk_rows):
            self._write_chunk(frame.iloc[start : start + self.chunk_rows])
        self.stats.seconds = time.perf_counter() - self._started

    def finish(self) -> WriteStats:
        self.stats.seconds = time.perf_counter() - self._started
        return self.stats

    def _columns_for(self, frame: pd.DataFrame) -> list[ColumnInfo]:
        unknown = [c for c in frame.columns if c not in self.info.columns]
        if unknown:
            raise StorageError(f"{self.info.qualified_name} has no column(s) {unknown}")
        columns = [
            self.info.columns[c]
            for c in frame.columns
            if c not in MANAGED_COLUMNS and not self.info.columns[c].generated
        ]
        missing_pk = [c for c in self.info.primary_key if c not in frame.columns]
        if missing_pk and self.info.primary_key:
            raise StorageError(
                f"frames for {self.info.qualified_name} must include the primary key column(s) {missing_pk}"
            )
        return columns

    def _check_slice(self, chunk: pd.DataFrame) -> None:
        # Rows outside the slice would escape the next replace of their partition and confuse
        # the slice counts; a producer bug worth failing loudly on.
        col = self.partition_column
        if col is None or self.partition_values is None or col not in chunk.columns:
            return
        if self.info.columns[col].type_oid not in INT_OIDS | TEXT_OIDS:
            return
        allowed = {str(v) for v in self.partition_values}
        outside = [v for v in pd.unique(chunk[col].dropna()) if str(v) not in allowed]
        if outside:
            raise StorageError(
                f"rows with {col} in {sorted(map(str, outside))[:5]} are outside the partition(s) "
                f"being written to {self.info.qualified_name}: {sorted(allowed)[:5]}"
            )

    def _write_chunk(self, chunk: pd.DataFrame) -> None:
        self._check_slice(chunk)
        columns = self._columns_for(chunk)
        pk = list(self.info.primary_key)
        if pk:
            dup = chunk.duplicated(subset=pk, keep="last")
            if dup.any():
                chunk = chunk.loc[~dup.to_numpy()]
        values = [encode_column(chunk[c.name], c) for c in columns]
        n = len(chunk)
        self.stats.rows += n
        self.stats.chunks += 1
        present = {c.name for c in columns}
        if any(c.required and c.name not in present for c in self.info.columns.values()):
            # PostgreSQL checks NOT NULL on the row proposed for INSERT before it looks for a
            # conflict, so rows lacking a required column can only ever update existing rows.
            self.stats.updated += self._update_only(columns, values)
            return
        if self._direct:
            try:
                # A savepoint lets a key repeated across chunks (or written concurrently) fall
                # back to the upsert path instead of failing the whole transaction.
                with self.conn.transaction():
                    copy_into(self.conn, self.info.ident, columns, values)
            except psycopg.errors.UniqueViolation:
                self._direct = False
            else:
                self.stats.inserted += n
                return
        inserted, updated = self._upsert(columns, values)
        self.stats.inserted += inserted
        self.stats.updated += updated

    def _stage(self, columns: Sequence[ColumnInfo]) -> sql.Identifier:
        key = tuple(c.name for c in columns)
        stage = self._stages.get(key)
        with self.conn.cursor() as cur:
            if stage is None:
                stage = sql.Identifier(f"_vk_stage_{id(self):x}_{len(self._stages)}")
                cur.execute(
                    sql.SQL(
                        "CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA"
                    ).format(stage, sql.SQL(", ").join(map(sql.Identifier, key)), self.info.ident)
                )
                self._stages[key] = stage
            else:
                cur.execute(sql.SQL("TRUNCATE {}").format(stage))
        return stage

    def _returning(self, first: sql.Composable) -> sql.Composable:
        if self._history is None:
            return first
        return sql.SQL("{}, {}").format(
            first, returning(self._history, list(self.info.primary_key))
        )

    def _with_history(
        self, write: sql.Composable, stage: sql.Identifier, select: sql.Composable
    ) -> sql.Composable:
        """``WITH w AS (write) select``, plus the table's revision/snapshot CTEs: one
        statement, so a change and what it records commit together."""
        if self._history is None or not self.info.primary_key:
            return sql.SQL("WITH w AS ({}) {}").format(write, select)
        pk = list(self.info.primary_key)
        ctes = [("o", old_rows(self._history, pk, self.info.ident, stage)), ("w", write)]
        observed = sql.Literal(self.observed_at) if self.observed_at is not None else None
        ctes += history_ctes(self._history, pk, self.schema, observed_at=observed)
        return sql.SQL("WITH {} {}").format(
            sql.SQL(", ").join(
                sql.SQL("{} AS ({})").format(sql.Identifier(name), body) for name, body in ctes
            ),
            select,
        )

    def _update_only(self, columns: Sequence[ColumnInfo], values: Sequence[list[Any]]) -> int:
        stage = self._stage(columns)
        copy_into(self.conn, stage, columns, values)
        names = [c.name for c in columns]
        pk = list(self.info.primary_key)
        rest = [c for c in names if c not in pk]
        match = sql.SQL(" AND ").join(
            sql.SQL("t.{0} = s.{0}").format(sql.Identifier(c)) for c in pk
        )
        with self.conn.cursor() as cur:
            row = cur.execute(
                sql.SQL(
                    "SELECT count(*) FROM {} s WHERE NOT EXISTS (SELECT 1 FROM {} t WHERE {})"
                ).format(stage, self.info.ident, match)
            ).fetchone()
            if row and row[0]:
                missing = [
                    c.name for c in self.info.columns.values() if c.required and c.name not in names
                ]
                raise StorageError(
                    f"{row[0]} row(s) written to {self.info.qualified_name} without the required "
                    f"column(s) {missing} have no existing row to update"
                )
            if not rest:
                return 0
            sets = [sql.SQL("{0} = s.{0}").format(sql.Identifier(c)) for c in rest]
            if "last_changed_at" in self.info.columns:
                sets.append(sql.SQL("last_changed_at = now()"))
            write = sql.SQL(
                "UPDATE {target} AS t SET {sets} FROM {stage} s WHERE {match}"
                " AND ROW({old}) IS DISTINCT FROM ROW({new}) RETURNING {ret}"
            ).format(
                target=self.info.ident,
                sets=sql.SQL(", ").join(sets),
                stage=stage,
                match=match,
                old=sql.SQL(", ").join(sql.Identifier("t", c) for c in rest),
                new=sql.SQL(", ").join(sql.Identifier("s", c) for c in rest),
                ret=self._returning(sql.SQL("1 AS one")),
            )
            stmt = self._with_history(write, stage, sql.SQL("SELECT count(*) FROM w"))
            row = cur.execute(stmt).fetchone()
        return int(row[0]) if row else 0

    def _upsert(
        self, columns: Sequence[ColumnInfo], values: Sequence[list[Any]]
    ) -> tuple[int, int]:
        stage = self._stage(columns)
        copy_into(self.conn, stage, columns, values)
        names = [c.name for c in columns]
        pk = list(self.info.primary_key)
        rest = [c for c in names if c not in pk]
        cols = sql.SQL(", ").join(map(sql.Identifier, names))
        if not pk:
            conflict = sql.SQL("")
        elif not rest:
            conflict = sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(
                sql.SQL(", ").join(map(sql.Identifier, pk))
            )
        else:
            sets = [sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in rest]
            if "last_changed_at" in self.info.columns:
                sets.append(sql.SQL("last_changed_at = now()"))
            # ROW() keeps a single-column comparison a row comparison too.
            conflict = sql.SQL(
                " ON CONFLICT ({pk}) DO UPDATE SET {sets}"
                " WHERE ROW({old}) IS DISTINCT FROM ROW({new})"
            ).format(
                pk=sql.SQL(", ").join(map(sql.Identifier, pk)),
                sets=sql.SQL(", ").join(sets),
                old=sql.SQL(", ").join(sql.Identifier("t", c) for c in rest),
                new=sql.SQL(", ").join(sql.Identifier("excluded", c) for c in rest),
            )
        write = sql.SQL(
            "INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM {stage}{conflict}"
            " RETURNING {ret}"
        ).format(
            target=self.info.ident,
            cols=cols,
            stage=stage,
            conflict=conflict,
            ret=self._returning(sql.SQL("(xmax = 0) AS inserted")),
        )
        stmt = self._with_history(
            write,
            stage,
            sql.SQL(
                "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)"
                " FROM w"
            ),
        )
        with self.conn.cursor() as cur:
            row = cur.execute(stmt).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


def write_frames(
    conn: psycopg.Connection[Any],
    table: str,
    frames: Iterable[pd.DataFrame] | pd.DataFrame,
    *,
    schema: str = "vk",
    mode: WriteMode = "upsert",
    partition_column: str | None = None,
    partition_values: Sequence[Any] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> WriteStats:
    """Write ``frames`` into ``schema.table`` in one transaction and return what happened.

    Only the columns present in a frame are written; the others keep their values (or get their
    defaults on insert). ``upsert`` inserts new keys and updates changed rows, bumping
    ``last_changed_at`` only when something differs. ``replace`` first deletes the slice
    ``partition_column = ANY(partition_values)`` (the whole table without a partition column).
    Memory stays bounded by one chunk of ``chunk_rows`` rows when ``frames`` is a generator.

    On an idle connection this commits its own transaction; inside ``conn.transaction()`` it
    runs in a savepoint and commits (or rolls back) with the caller's transaction.
    """
    if isinstance(frames, pd.DataFrame):
        frames = [frames]
    with conn.transaction():
        writer = TableWriter(
            conn,
            table,
            schema=schema,
            mode=mode,
            partition_column=partition_column,
            partition_values=partition_values,
            chunk_rows=chunk_rows,
        ).begin()
        for frame in frames:
            writer.write(frame)
        return writer.finish()
