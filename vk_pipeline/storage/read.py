"""Reads of a table, or a partition slice of it, as pandas DataFrames in bounded chunks.

Types come back as the writer takes them (``write.py``), so a frame read here can be written
back unchanged: nullable integer and boolean dtypes, UTC timestamps, and objects for text,
jsonb and arrays so that None and '' stay distinct.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd
import psycopg
from psycopg import sql
from psycopg.types.json import set_json_loads

from vk_pipeline.storage.catalog import (
    BOOL_OID,
    DEFAULT_CHUNK_ROWS,
    FLOAT_OIDS,
    INT_OIDS,
    TIMESTAMP_OID,
    TIMESTAMPTZ_OID,
    ColumnInfo,
    StorageError,
    partition_filter,
    table_info,
)

_NAT = np.iinfo(np.int64).min  # numpy's NaT is this int64 viewed as datetime64


def _to_series(values: Sequence[Any], column: ColumnInfo) -> pd.Series:
    oid = column.type_oid
    if oid in INT_OIDS:
        return pd.Series(pd.array(values, dtype="Int64"), name=column.name)
    if oid == BOOL_OID:
        return pd.Series(pd.array(values, dtype="boolean"), name=column.name)
    if oid in FLOAT_OIDS:
        return pd.Series(pd.array(values, dtype="Float64"), name=column.name)
    if oid in (TIMESTAMPTZ_OID, TIMESTAMP_OID):
        # Selected as epoch microseconds (see _select_expr): building datetime objects and
        # parsing them back was the slowest part of reading.
        micros = pd.array(values, dtype="Int64").to_numpy(dtype=np.int64, na_value=_NAT)
        index = pd.DatetimeIndex(micros.view("datetime64[us]"))
        if oid == TIMESTAMPTZ_OID:
            index = index.tz_localize("UTC")
        return pd.Series(index, name=column.name)
    # text, jsonb (already Python objects), arrays (lists) and the rest stay objects, which
    # keeps None and '' apart.
    return pd.Series(list(values), dtype=object, name=column.name)


def _select_expr(column: ColumnInfo) -> tuple[sql.Composable, int]:
    ident = sql.Identifier(column.name)
    if column.type_oid in (TIMESTAMPTZ_OID, TIMESTAMP_OID):
        expr = sql.SQL(
            "CASE WHEN isfinite({0}) THEN (extract(epoch FROM {0}) * 1000000)::int8 END AS {0}"
        ).format(ident)
        return expr, 20
    return ident, column.type_oid


def _json_loader_for(cur: psycopg.Cursor[Any]) -> None:
    # orjson parses the jsonb column several times faster than the standard library.
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
    where_sql = partition_filter(info, partition_column, partition_values)
    for column, values in (where or {}).items():
        where_sql = sql.SQL("({}) AND ({})").format(
            where_sql, partition_filter(info, column, list(values))
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
