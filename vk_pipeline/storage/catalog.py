"""What the catalog says about a table, and the vocabulary the reader and the writer share.

Columns, types and primary key come from ``pg_catalog`` rather than from a schema written down
twice, so storage knows tables and rows, not what they mean. The slice filter lives here too:
writes (``replace`` deletes a slice), reads and the IO manager's slice counts all name a
partition of a table the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

DEFAULT_CHUNK_ROWS = 50_000

# Type OIDs of the columns the encoders and decoders treat specially.
JSONB_OID = 3802
JSON_OID = 114
INT_OIDS = frozenset({20, 21, 23})  # int8, int2, int4
FLOAT_OIDS = frozenset({700, 701})
BOOL_OID = 16
TIMESTAMPTZ_OID = 1184
TIMESTAMP_OID = 1114
DATE_OID = 1082
TEXT_OIDS = frozenset({25, 1043, 1042, 19})  # text, varchar, bpchar, name


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


_INTEGER = re.compile(r"-?[0-9]+")
_INT_RANGE = {20: 2**63, 23: 2**31, 21: 2**15}


def values_of_column(column: ColumnInfo, values: Sequence[Any]) -> list[Any]:
    """The values that can be values of `column` (for an integer column, integer literals in its
    range); the others name no row of the table. Partition keys are free text to Dagster (one can
    be typed by hand in its UI), and one that is not a value must not fail a read or write of the
    others."""
    if column.type_oid not in INT_OIDS:
        return list(values)
    bound = _INT_RANGE[column.type_oid]
    return [
        v
        for v in values
        if isinstance(v, int) or (_INTEGER.fullmatch(str(v)) and -bound <= int(str(v)) < bound)
    ]


def partition_filter(
    info: TableInfo, partition_column: str | None, partition_values: Sequence[Any] | None
) -> sql.Composable:
    """The SQL condition ``partition_column = ANY(partition_values)`` on ``info``'s table
    (``TRUE`` without a partition column), checked against the catalog."""
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
