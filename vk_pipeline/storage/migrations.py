"""Schema migrations: ordered plain-SQL files plus a version table, not Alembic.

Plain SQL files are readable (and runnable with ``psql -v schema=vk -f``) by DBAs, there are no
ORM models to keep in step with the tables, the concurrency guard is an advisory lock in about
ten lines, and it is one dependency less.

Files live in ``migrations/NNNN_name.sql`` and are applied in version order, each once, inside a
single transaction that holds ``pg_advisory_xact_lock`` on a key derived from the schema name,
so concurrent starters queue up instead of racing. ``:"schema"`` in a file stands for the
schema name quoted as an identifier (the psql syntax for the same thing).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

SCHEMA_PLACEHOLDER = ':"schema"'
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def render(self, schema_ident: str) -> str:
        return self.sql.replace(SCHEMA_PLACEHOLDER, schema_ident)


def load_migrations() -> list[Migration]:
    """All migrations shipped with the package, in version order."""
    found: list[Migration] = []
    for entry in resources.files("vk_pipeline.storage").joinpath("migrations").iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions in {versions}")
    return found


def validate_schema_name(schema: str) -> str:
    # Any name is safe once quoted; these are the limits PostgreSQL itself would enforce later
    # with a less helpful message.
    if not schema or "\x00" in schema or len(schema.encode()) > 63:
        raise ValueError(f"invalid schema name {schema!r}: 1-63 bytes, no NUL")
    return schema


def lock_key(schema: str) -> int:
    """A stable signed 64-bit advisory-lock key for migrating ``schema``."""
    digest = hashlib.blake2b(f"vk_pipeline.migrations:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def applied_versions(conn: psycopg.Connection[Any], schema: str) -> list[int]:
    table = sql.Identifier(schema, "schema_migrations").as_string(conn)
    with conn.cursor() as cur:
        row = cur.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        if row is None or row[0] is None:
            return []
        cur.execute(
            sql.SQL("SELECT version FROM {} ORDER BY version").format(
                sql.Identifier(schema, "schema_migrations")
            )
        )
        return [r[0] for r in cur.fetchall()]


def migrate(conn: psycopg.Connection[Any], schema: str = "vk") -> list[Migration]:
    """Bring ``schema`` up to the newest migration; return the migrations applied now.

    Idempotent and safe to call from many processes at once. Runs in its own transaction (a
    savepoint if ``conn`` is already inside one).
    """
    validate_schema_name(schema)
    migrations = load_migrations()
    schema_ident = sql.Identifier(schema).as_string(conn)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(schema),))
        # Checked under the lock: whoever held it before us may have done the work already.
        done = set(applied_versions(conn, schema))
        pending = [m for m in migrations if m.version not in done]
        if not pending:
            return []
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cur.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " version integer PRIMARY KEY,"
                " name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(schema, "schema_migrations"))
        )
        for migration in pending:
            # Files hold several statements; the simple query protocol runs them as one batch.
            cur.execute(migration.render(schema_ident).encode(), prepare=False)
            cur.execute(
                sql.SQL("INSERT INTO {} (version, name) VALUES (%s, %s)").format(
                    sql.Identifier(schema, "schema_migrations")
                ),
                (migration.version, migration.name),
            )
    return pending
