"""DataFrame columns to binary COPY: the encoders and the COPY that sends them.

Rows are encoded with psycopg's binary COPY (``Copy.write_row`` after ``set_types``): measured
against pandas ``to_csv`` and pyarrow's CSV writer into ``COPY ... (FORMAT csv)`` it was the
fastest end to end (``benchmarks/storage_bench.py --encoders``), because the server skips text
parsing for every column but jsonb, and it is exact by construction: NULL and '' are distinct
values rather than a quoting convention, and integers and timestamps never go through text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.copy import QueuedLibpqWriter
from psycopg.pq import Format

from vk_pipeline.storage.catalog import (
    BOOL_OID,
    DATE_OID,
    FLOAT_OIDS,
    INT_OIDS,
    JSON_OID,
    JSONB_OID,
    TEXT_OIDS,
    TIMESTAMP_OID,
    TIMESTAMPTZ_OID,
    ColumnInfo,
    StorageError,
)


# orjson (a declared dependency) is several times faster than the standard library on the jsonb
# column, which dominates encoding time.
def _json_dumps(value: Any) -> str:
    return orjson.dumps(
        value,
        default=_json_default,
        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
    ).decode()


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


class _JsonTextBinaryDumper(Dumper):
    """jsonb in binary COPY from text we serialised already (version byte + UTF-8 JSON)."""

    format = Format.BINARY
    oid = JSONB_OID

    def dump(self, obj: str) -> bytes:
        return b"\x01" + obj.encode()


class _JsonTextDumper(Dumper):
    format = Format.BINARY
    oid = JSON_OID

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
    text = element_oid in TEXT_OIDS
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
    if oid in INT_OIDS:
        return _int_values(series, column.name)
    if oid in TEXT_OIDS:
        return _text_values(series, column.name)
    if oid == TIMESTAMPTZ_OID:
        return _datetime_values(series, tz_aware=True)
    if oid == TIMESTAMP_OID:
        return _datetime_values(series, tz_aware=False)
    if oid == BOOL_OID:
        return _bool_values(series, column.name)
    if oid in (JSONB_OID, JSON_OID):
        return _json_values(series)
    if oid in FLOAT_OIDS:
        return _float_values(series)
    if column.element_oid:
        return _array_values(series, column.element_oid)
    if oid == DATE_OID and series.dtype.kind == "M":
        values = series.dt.date.tolist()
        for i in _missing_positions(series):
            values[i] = None
        return values
    return _object_values(series)


def copy_into(
    conn: psycopg.Connection[Any],
    target: sql.Composable,
    columns: Sequence[ColumnInfo],
    values: Sequence[list[Any]],
) -> None:
    """COPY encoded ``values`` (one list per column, see ``encode_column``) into ``target``."""
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
