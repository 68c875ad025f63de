"""The Dagster resource that hands out PostgreSQL connections to the project's schema."""

from __future__ import annotations

import atexit
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import pandas as pd
import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import Field

from vk_pipeline.storage.catalog import DEFAULT_CHUNK_ROWS
from vk_pipeline.storage.embedded import resolve_database_url
from vk_pipeline.storage.migrations import migrate, validate_schema_name
from vk_pipeline.storage.read import read_frame
from vk_pipeline.storage.write import WriteMode, WriteStats, write_frames


class DatabaseUnreachableError(ConnectionError):
    """PostgreSQL could not be reached; the message names host, port and database only."""


# Steps that touch Postgres (crawls, checks, analysis) retry a lost connection: the pool checks
# connections on checkout, so an attempt after the database is back gets a live one. The job
# applies it to every step (`jobs.py`); assets with their own policy (VK_RETRY) keep theirs.
DATABASE_RETRY = dg.RetryPolicy(
    max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


# --------------------------------------------------------------------------------------------
# URLs


def normalize_url(url: str) -> str:
    """Accept SQLAlchemy-style ``postgresql+psycopg://`` URLs too; libpq wants the bare scheme."""
    return re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", url.strip())


def url_target(url: str) -> dict[str, str]:
    """host, port, dbname and user of ``url`` (libpq defaults filled in), without the password."""
    try:
        params = conninfo_to_dict(normalize_url(url))
    except psycopg.ProgrammingError:
        params = {}
    host = str(
        params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "localhost"
    )
    return {
        "host": host,
        "port": str(params.get("port") or os.environ.get("PGPORT") or "5432"),
        "dbname": str(
            params.get("dbname") or os.environ.get("PGDATABASE") or params.get("user") or ""
        ),
        "user": str(params.get("user") or os.environ.get("PGUSER") or ""),
    }


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe to log)."""
    return scrub_secrets(url, url)


def scrub_secrets(text: str, url: str | None) -> str:
    """Remove the password of ``url`` (and anything shaped like one) from ``text``."""
    if url:
        try:
            password = conninfo_to_dict(normalize_url(url)).get("password")
        except psycopg.ProgrammingError:
            password = None
        if password:
            text = text.replace(str(password), "***")
    text = re.sub(r"(://[^:/@\s]*:)[^@\s]+@", r"\1***@", text)
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", text, flags=re.I)


def with_dbname(url: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    url = normalize_url(url)
    if "://" in url:
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path="/" + dbname))
    return make_conninfo(url, dbname=dbname)


def _unreachable(url: str, exc: BaseException) -> DatabaseUnreachableError:
    target = url_target(url)
    reason = scrub_secrets(str(exc).strip() or type(exc).__name__, url)
    return DatabaseUnreachableError(
        f"cannot connect to PostgreSQL at host {target['host']}, port {target['port']}, "
        f"database {target['dbname']!r} as user {target['user']!r}: {reason}"
    )


# --------------------------------------------------------------------------------------------
# Per-process pools and migration bookkeeping

_lock = threading.Lock()
_pools: dict[tuple[int, str, int], psycopg_pool.ConnectionPool] = {}
_migrated: set[tuple[str, str]] = set()


def _get_pool(url: str, size: int, connect_timeout: float) -> psycopg_pool.ConnectionPool:
    # Keyed by pid too: a forked child must not share the parent's sockets.
    key = (os.getpid(), url, size)
    with _lock:
        pool = _pools.get(key)
        if pool is not None:
            return pool
        # One direct attempt first: the pool would only report a timeout, while libpq's own
        # error says what is wrong (refused, unknown database, authentication...).
        error: BaseException | None = None
        try:
            psycopg.connect(url, connect_timeout=max(1, int(connect_timeout))).close()
        except psycopg.Error as exc:
            error = _unreachable(url, exc)
        if error is not None:
            # Raised outside the except block so no psycopg exception (whose text may include
            # the conninfo) is chained as __context__.
            raise error
        pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, size),
            timeout=connect_timeout,
            kwargs={
                "application_name": "vk_pipeline",
                "connect_timeout": max(1, int(connect_timeout)),
            },
            open=True,
            name=f"vk_pipeline-{url_target(url)['dbname']}",
            # Every checkout is checked first: after a database restart or
            # pg_terminate_backend the idle connections are dead, and handing them out made
            # every retry fail within a second while the database was up again.
            check=psycopg_pool.ConnectionPool.check_connection,
        )
        _pools[key] = pool
        return pool


def close_pools(url: str | None = None) -> None:
    """Close this process's pools (all, or those for ``url``), e.g. before dropping a database."""
    with _lock:
        for key in [k for k in _pools if url is None or k[1] == normalize_url(url)]:
            _pools.pop(key).close()
        if url is not None:
            _migrated.difference_update({m for m in _migrated if m[0] == normalize_url(url)})
        else:
            _migrated.clear()


atexit.register(close_pools)


# --------------------------------------------------------------------------------------------
# The resource


class PostgresResource(dg.ConfigurableResource):
    """Connections to the project's PostgreSQL schema.

    ``database_url`` falls back to ``$DATABASE_URL`` and then to the embedded server
    (``vk_pipeline.storage.embedded``). The schema is migrated on first use in each process.
    """

    database_url: str | None = Field(
        default=None,
        description="postgresql:// URL or libpq conninfo; unset: $DATABASE_URL, then the embedded server.",
    )
    schema_name: str = Field(default="vk", description="Schema holding the tables.")
    pool_size: int = Field(default=4, description="Max connections per process.")
    connect_timeout: float = Field(default=10.0, description="Seconds to wait for a connection.")

    def resolved_url(self) -> str:
        return normalize_url(resolve_database_url(self.database_url))

    def _pool(self) -> tuple[str, psycopg_pool.ConnectionPool]:
        url = self.resolved_url()
        return url, _get_pool(url, self.pool_size, self.connect_timeout)

    @contextmanager
    def _raw_connection(self) -> Iterator[psycopg.Connection[Any]]:
        url, pool = self._pool()
        error: BaseException | None = None
        try:
            cm = pool.connection()
            conn = cm.__enter__()
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            error = _unreachable(url, exc)
        if error is not None:
            raise error
        # The pool commits on a clean exit and rolls back if the block raised.
        with _exit_with(cm):
            yield conn

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled psycopg 3 connection (not autocommit): committed when the block exits
        cleanly, rolled back if it raises."""
        self.ensure_schema()
        with self._raw_connection() as conn:
            yield conn

    def ensure_schema(self) -> list[int]:
        """Apply pending migrations (once per process per URL and schema); return the versions
        applied by this call."""
        validate_schema_name(self.schema_name)
        key = (self.resolved_url(), self.schema_name)
        if key in _migrated:
            return []
        with self._raw_connection() as conn:
            applied = migrate(conn, self.schema_name)
        with _lock:
            _migrated.add(key)
        return [m.version for m in applied]

    def execute(
        self, query: Any, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement in its own transaction; return its rows (empty if none)."""
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    def read_frame(
        self,
        table: str,
        columns: Sequence[str] | None = None,
        partition_column: str | None = None,
        partition_values: Sequence[Any] | None = None,
        where: Mapping[str, Sequence[Any]] | None = None,
    ) -> pd.DataFrame:
        with self.connection() as conn:
            return read_frame(
                conn,
                table,
                columns,
                schema=self.schema_name,
                partition_column=partition_column,
                partition_values=partition_values,
                where=where,
            )

    def write_frames(
        self,
        table: str,
        frames: Iterable[pd.DataFrame] | pd.DataFrame,
        *,
        mode: WriteMode = "upsert",
        partition_column: str | None = None,
        partition_values: Sequence[Any] | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> WriteStats:
        with self.connection() as conn:
            return write_frames(
                conn,
                table,
                frames,
                schema=self.schema_name,
                mode=mode,
                partition_column=partition_column,
                partition_values=partition_values,
                chunk_rows=chunk_rows,
            )


@contextmanager
def _exit_with(cm: Any) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        if not cm.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        cm.__exit__(None, None, None)
