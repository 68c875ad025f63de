"""Bulk writes and reads of pandas DataFrames over PostgreSQL COPY, generic over tables.

Rows are encoded with psycopg's binary COPY (``Copy.write_row`` after ``set_types``): measured
against pandas ``to_csv`` and pyarrow's CSV writer into ``COPY ... (FORMAT csv)`` it was the
fastest end to end (``benchmarks/storage_bench.py --encoders``), because the server skips text
parsing for every column but jsonb, and it is exact by construction: NULL and '' are distinct
values rather than a quoting convention, and integers and timestamps never go through text.

The target table's columns, types and primary key come from the catalog, so this module knows
tables and rows, not what they mean.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.copy import QueuedLibpqWriter
from psycopg.pq import Format

try:  # orjson is several times faster on the jsonb column, which dominates encoding time.
    import orjson

    def _json_dumps(value: Any) -> str:
        return orjson.dumps(
            value,
            default=_json_default,
            option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
        ).decode()

except ImportError:  # pragma: no cover - depends on the environment
    orjson = None
    _json_encoder = json.JSONEncoder(
        ensure_ascii=False, separators=(",", ":"), default=lambda v: _json_default(v)
    )

    def _json_dumps(value: Any) -> str:
        return _json_encoder.encode(value)


WriteMode = Literal["upsert", "replace"]

DEFAULT_CHUNK_ROWS = 50_000

# Columns the storage layer maintains itself; values sent by a writer are ignored so that a
# frame read with read_frame() can be written back unchanged.
MANAGED_COLUMNS = frozenset({"first_seen_at", "last_changed_at"})

_JSONB_OID = 3802
_JSON_OID = 114
_INT_OIDS = frozenset({20, 21, 23})  # int8, int2, int4
_FLOAT_OIDS = frozenset({700, 701})
_BOOL_OID = 16
_TIMESTAMPTZ_OID = 1184
_TIMESTAMP_OID = 1114
_DATE_OID = 1082
_TEXT_OIDS = frozenset({25, 1043, 1042, 19})  # text, varchar, bpchar, name


def _json_default(value: Any) -> Any:
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (pd.Timestamp,)) or hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


# --------------------------------------------------------------------------------------------
# Catalog introspection


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type_oid: int
    type_name: str  # format_type(), e.g. "bigint", "text[]", "timestamp with time zone"
    element_oid: int  # 0 unless an array
    not_null: bool
    generated: bool
    has_default: bool = False

    @property
    def required(self) -> bool:
        """An INSERT must supply it: NOT NULL, no default, not generated."""
        return self.not_null and not self.has_default and not self.generated


@dataclass(frozen=True)
class TableInfo:
    schema: str
    name: str
    columns: dict[str, ColumnInfo]
    primary_key: tuple[str, ...]

    @property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.name)

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


class StorageError(RuntimeError):
    """A write or read that cannot be carried out as asked."""


def table_info(conn: psycopg.Connection[Any], table: str, schema: str) -> TableInfo:
    regclass = sql.Identifier(schema, table).as_string(conn)
    with conn.cursor() as cur:
        row = cur.execute("SELECT to_regclass(%s)::oid", (regclass,)).fetchone()
        if row is None or row[0] is None:
            raise StorageError(f"table {schema}.{table} does not exist (run the migrations?)")
        oid = row[0]
        cur.execute(
            """
            SELECT a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod),
                   CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0 END,
                   a.attnotnull, a.attgenerated <> '', a.atthasdef OR a.attidentity <> ''
            FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """,
            (oid,),
        )
        columns = {
            r[0]: ColumnInfo(r[0], r[1], r[2], int(r[3]), r[4], r[5], r[6]) for r in cur.fetchall()
        }
        cur.execute(
            """
            SELECT a.attname
            FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = %s AND i.indisprimary
            ORDER BY k.ord
            """,
            (oid,),
        )
        primary_key = tuple(r[0] for r in cur.fetchall())
    return TableInfo(schema, table, columns, primary_key)


# --------------------------------------------------------------------------------------------
# Encoding: DataFrame columns -> Python values the binary dumpers accept


class _JsonTextBinaryDumper(Dumper):
    """jsonb in binary COPY from text we serialised already (version byte + UTF-8 JSON)."""

    format = Format.BINARY
    oid = _JSONB_OID

    def dump(self, obj: str) -> bytes:
        return b"\x01" + obj.encode()


class _JsonTextDumper(Dumper):
    format = Format.BINARY
    oid = _JSON_OID

    def dump(self, obj: str) -> bytes:
        return obj.encode()


def _strip_nul(value: str) -> str:
    # PostgreSQL text cannot hold U+0000 (nor can jsonb strings), so it is dropped rather than
    # failing the whole batch; no other character is touched.
    return value.replace("\x00", "")


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return _strip_nul(value)
    if isinstance(value, dict):
        return {_clean_json(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    return value


def _missing_positions(series: pd.Series) -> np.ndarray:
    return np.flatnonzero(series.isna().to_numpy())


def _object_values(series: pd.Series) -> list[Any]:
    values = series.tolist()
    for i in _missing_positions(series):
        values[i] = None
    return values


def _int_values(series: pd.Series, column: str) -> list[Any]:
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu":
        return series.to_numpy().tolist()
    try:
        # Int64 conversion refuses non-integral floats instead of truncating them.
        arr = pd.array(series, dtype="Int64")
    except (TypeError, ValueError) as exc:
        raise StorageError(f"column {column!r} must hold integers: {exc}") from exc
    return arr.to_numpy(dtype=object, na_value=None).tolist()


def _float_values(series: pd.Series) -> list[Any]:
    return pd.array(series, dtype="Float64").to_numpy(dtype=object, na_value=None).tolist()


def _bool_values(series: pd.Series, column: str) -> list[Any]:
    if isinstance(series.dtype, np.dtype) and series.dtype == np.bool_:
        return series.tolist()
    try:
        arr = pd.array(series, dtype="boolean")
    except (TypeError, ValueError) as exc:
        raise StorageError(f"column {column!r} must hold booleans: {exc}") from exc
    return arr.to_numpy(dtype=object, na_value=None).tolist()


def _datetime_values(series: pd.Series, tz_aware: bool) -> list[Any]:
    if series.dtype.kind in "iuf":
        # Unix timestamps in seconds are what most sources hand out.
        series = pd.to_datetime(series, unit="s", utc=True)
    elif series.dtype.kind != "M":
        series = pd.to_datetime(series, utc=True, format="ISO8601")
    if tz_aware:
        if series.dt.tz is None:
            series = series.dt.tz_localize("UTC")  # naive timestamps are taken to be UTC
    elif series.dt.tz is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    unit = np.datetime_data(series.dtype.base if hasattr(series.dtype, "base") else series.dtype)
    if unit[0] == "ns":
        # PostgreSQL keeps microseconds; truncate here so to_pydatetime() does not warn.
        series = series.dt.floor("us")
    values = series.dt.to_pydatetime().tolist()
    for i in _missing_positions(series):
        values[i] = None
    return values


def _text_values(series: pd.Series, column: str) -> list[Any]:
    values = _object_values(series)
    bad = next((v for v in values if v is not None and not isinstance(v, str)), None)
    if bad is not None:
        raise StorageError(f"column {column!r} must hold str, got {type(bad).__name__}: {bad!r}")
    if any("\x00" in v for v in values if v):
        values = [None if v is None else _strip_nul(v) for v in values]
    return values


def _json_values(series: pd.Series) -> list[Any]:
    out: list[Any] = []
    append = out.append
    dumps = _json_dumps
    for v in _object_values(series):
        if v is None:
            append(None)
            continue
        # A str is taken as JSON text serialised by the caller (e.g. the raw API response).
        s = v if isinstance(v, str) else dumps(v)
        if "\\u0000" in s:
            s = dumps(_clean_json(json.loads(s)))
        append(s)
    return out


def _array_values(series: pd.Series, element_oid: int) -> list[Any]:
    values = _object_values(series)
    text = element_oid in _TEXT_OIDS
    for i, v in enumerate(values):
        if v is None or type(v) is list:
            if text and v and any(e and "\x00" in e for e in v):
                values[i] = [None if e is None else _strip_nul(e) for e in v]
            continue
        # numpy arrays (e.g. from pyarrow list columns) and tuples become plain lists.
        v = v.tolist() if isinstance(v, np.ndarray) else list(v)
        if text:
            v = [None if e is None else _strip_nul(e) for e in v]
        values[i] = v
    return values


def encode_column(series: pd.Series, column: ColumnInfo) -> list[Any]:
    """Python values for one column, ready for the binary COPY dumper of its type."""
    oid = column.type_oid
    if oid in _INT_OIDS:
        return _int_values(series, column.name)
    if oid in _TEXT_OIDS:
        return _text_values(series, column.name)
    if oid == _TIMESTAMPTZ_OID:
        return _datetime_values(series, tz_aware=True)
    if oid == _TIMESTAMP_OID:
        return _datetime_values(series, tz_aware=False)
    if oid == _BOOL_OID:
        return _bool_values(series, column.name)
    if oid in (_JSONB_OID, _JSON_OID):
        return _json_values(series)
    if oid in _FLOAT_OIDS:
        return _float_values(series)
    if column.element_oid:
        return _array_values(series, column.element_oid)
    if oid == _DATE_OID and series.dtype.kind == "M":
        values = series.dt.date.tolist()
        for i in _missing_positions(series):
            values[i] = None
        return values
    return _object_values(series)


def _copy_into(
    conn: psycopg.Connection[Any],
    target: sql.Composable,
    columns: Sequence[ColumnInfo],
    values: Sequence[list[Any]],
) -> None:
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
        target, sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    )
    with conn.cursor() as cur:
        cur.adapters.register_dumper(None, _JsonTextBinaryDumper)
        cur.adapters.register_dumper(None, _JsonTextDumper)
        # The queued writer sends buffers from a worker thread, so the server ingests one
        # part of the chunk while this thread encodes the next (2 cores: ~1.3x faster).
        with cur.copy(stmt, writer=QueuedLibpqWriter(cur)) as copy:
            copy.set_types([c.type_oid for c in columns])
            write_row = copy.write_row
            for row in zip(*values, strict=True):
                write_row(row)


# --------------------------------------------------------------------------------------------
# Writing


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


def _partition_filter(
    info: TableInfo, partition_column: str | None, partition_values: Sequence[Any] | None
) -> sql.Composable:
    if partition_column is None:
        return sql.SQL("TRUE")
    col = info.columns.get(partition_column)
    if col is None:
        raise StorageError(
            f"partition column {partition_column!r} is not a column of {info.qualified_name}"
        )
    if partition_values is None:
        raise StorageError("partition_values are required with partition_column")
    # Partition keys may arrive as strings (Dagster dynamic partitions): send them as a quoted
    # text[] literal (COPY (SELECT ...) takes no bind parameters) and let the server cast them
    # to the column's type, which also rejects keys that are not valid values of it.
    texts = [None if v is None else str(v) for v in partition_values]
    return sql.SQL("{} = ANY(CAST({} AS text[])::{})").format(
        sql.Identifier(partition_column), sql.Literal(texts), sql.SQL(col.type_name + "[]")
    )


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
    info: TableInfo = field(init=False)
    stats: WriteStats = field(init=False)
    _direct: bool = field(init=False, default=False)
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
        where = _partition_filter(self.info, self.partition_column, self.partition_values)
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
        if self.info.columns[col].type_oid not in _INT_OIDS | _TEXT_OIDS:
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
                    _copy_into(self.conn, self.info.ident, columns, values)
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

    def _update_only(self, columns: Sequence[ColumnInfo], values: Sequence[list[Any]]) -> int:
        stage = self._stage(columns)
        _copy_into(self.conn, stage, columns, values)
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
            row = cur.execute(
                sql.SQL(
                    "WITH w AS (UPDATE {target} AS t SET {sets} FROM {stage} s WHERE {match}"
                    " AND ROW({old}) IS DISTINCT FROM ROW({new}) RETURNING 1)"
                    " SELECT count(*) FROM w"
                ).format(
                    target=self.info.ident,
                    sets=sql.SQL(", ").join(sets),
                    stage=stage,
                    match=match,
                    old=sql.SQL(", ").join(sql.Identifier("t", c) for c in rest),
                    new=sql.SQL(", ").join(sql.Identifier("s", c) for c in rest),
                )
            ).fetchone()
        return int(row[0]) if row else 0

    def _upsert(
        self, columns: Sequence[ColumnInfo], values: Sequence[list[Any]]
    ) -> tuple[int, int]:
        stage = self._stage(columns)
        _copy_into(self.conn, stage, columns, values)
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
        stmt = sql.SQL(
            "WITH w AS (INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM {stage}{conflict}"
            " RETURNING (xmax = 0) AS inserted)"
            " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM w"
        ).format(target=self.info.ident, cols=cols, stage=stage, conflict=conflict)
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


# --------------------------------------------------------------------------------------------
# Reading


_NAT = np.iinfo(np.int64).min  # numpy's NaT is this int64 viewed as datetime64


def _to_series(values: Sequence[Any], column: ColumnInfo) -> pd.Series:
    oid = column.type_oid
    if oid in _INT_OIDS:
        return pd.Series(pd.array(values, dtype="Int64"), name=column.name)
    if oid == _BOOL_OID:
        return pd.Series(pd.array(values, dtype="boolean"), name=column.name)
    if oid in _FLOAT_OIDS:
        return pd.Series(pd.array(values, dtype="Float64"), name=column.name)
    if oid in (_TIMESTAMPTZ_OID, _TIMESTAMP_OID):
        # Selected as epoch microseconds (see _select_expr): building datetime objects and
        # parsing them back was the slowest part of reading.
        micros = pd.array(values, dtype="Int64").to_numpy(dtype=np.int64, na_value=_NAT)
        index = pd.DatetimeIndex(micros.view("datetime64[us]"))
        if oid == _TIMESTAMPTZ_OID:
            index = index.tz_localize("UTC")
        return pd.Series(index, name=column.name)
    # text, jsonb (already Python objects), arrays (lists) and the rest stay objects, which
    # keeps None and '' apart.
    return pd.Series(list(values), dtype=object, name=column.name)


def _select_expr(column: ColumnInfo) -> tuple[sql.Composable, int]:
    ident = sql.Identifier(column.name)
    if column.type_oid in (_TIMESTAMPTZ_OID, _TIMESTAMP_OID):
        expr = sql.SQL(
            "CASE WHEN isfinite({0}) THEN (extract(epoch FROM {0}) * 1000000)::int8 END AS {0}"
        ).format(ident)
        return expr, 20
    return ident, column.type_oid


def _json_loader_for(cur: psycopg.Cursor[Any]) -> None:
    if orjson is not None:
        from psycopg.types.json import set_json_loads

        set_json_loads(orjson.loads, context=cur)


def iter_frames(
    conn: psycopg.Connection[Any],
    table: str,
    columns: Sequence[str] | None = None,
    *,
    schema: str = "vk",
    partition_column: str | None = None,
    partition_values: Sequence[Any] | None = None,
    where: Mapping[str, Sequence[Any]] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """Stream a table (or a partition slice of it) as DataFrames of at most ``chunk_rows``.

    ``where`` adds ``column = ANY(values)`` filters (ANDed), e.g. the posts of one owner.
    Rows come through a server-side cursor, so memory is bounded by one chunk.
    """
    info = table_info(conn, table, schema)
    if columns is None:
        # Generated columns (text_tsv) are derived data and cannot be written back.
        cols = [c for c in info.columns.values() if not c.generated]
    else:
        unknown = [c for c in columns if c not in info.columns]
        if unknown:
            raise StorageError(f"{info.qualified_name} has no column(s) {unknown}")
        cols = [info.columns[c] for c in columns]
    where_sql = _partition_filter(info, partition_column, partition_values)
    for column, values in (where or {}).items():
        where_sql = sql.SQL("({}) AND ({})").format(
            where_sql, _partition_filter(info, column, list(values))
        )
    exprs = [_select_expr(c)[0] for c in cols]
    query = sql.SQL("SELECT {} FROM {} WHERE {}").format(
        sql.SQL(", ").join(exprs), info.ident, where_sql
    )
    yielded = False
    # A named cursor needs a transaction; this is a savepoint if the caller already has one.
    with conn.transaction(), conn.cursor(name=f"vk_read_{table}", binary=True) as cur:
        _json_loader_for(cur)
        cur.itersize = chunk_rows
        cur.execute(query)
        while rows := cur.fetchmany(chunk_rows):
            yield _rows_to_frame(rows, cols)
            yielded = True
    if not yielded:
        yield _rows_to_frame([], cols)


def _rows_to_frame(rows: list[tuple[Any, ...]], cols: Sequence[ColumnInfo]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({c.name: _to_series([], c) for c in cols})
    transposed = zip(*rows, strict=True)
    return pd.DataFrame({c.name: _to_series(v, c) for c, v in zip(cols, transposed, strict=True)})


def read_frame(
    conn: psycopg.Connection[Any],
    table: str,
    columns: Sequence[str] | None = None,
    *,
    schema: str = "vk",
    partition_column: str | None = None,
    partition_values: Sequence[Any] | None = None,
    where: Mapping[str, Sequence[Any]] | None = None,
) -> pd.DataFrame:
    """Read a table (or the slice ``partition_column = ANY(partition_values)``) as a DataFrame.

    bigint/int columns come back as ``Int64``, booleans as ``boolean``, timestamptz as
    ``datetime64[us, UTC]``; text, jsonb (dicts/lists) and arrays (lists) as ``object`` so that
    None and '' stay distinct. Generated columns are left out unless asked for by name.
    """
    frames = list(
        iter_frames(
            conn,
            table,
            columns,
            schema=schema,
            partition_column=partition_column,
            partition_values=partition_values,
            where=where,
        )
    )
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)
