"""Scratch PostgreSQL databases: created fresh on a server, dropped (with their pools) after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from vk_pipeline.budget.postgres import close_limiters
from vk_pipeline.storage import close_pools, resolve_database_url, with_dbname


def create_database(admin_url: str, prefix: str = "vkt") -> str:
    """A new empty database on the server of `admin_url` (one allowed to create databases)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_dbname(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    """Drop the database of `url`, after this process's pools and rate limiters on it."""
    close_limiters()
    close_pools(url)
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name)))
        )


@contextmanager
def scratch_database(admin_url: str | None = None, prefix: str = "vk_bench") -> Iterator[str]:
    """A fresh database on the server of `admin_url` (default: the embedded one), dropped after."""
    admin = resolve_database_url(admin_url)
    url = create_database(admin, prefix)
    try:
        yield url
    finally:
        drop_database(admin, url)
