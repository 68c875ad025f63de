"""The local setup shared by `make demo` and `make dev`: project dirs, Postgres, VK endpoint.

With `DATABASE_URL` unset, an embedded PostgreSQL runs from `.local/pgdata` and serves two
databases: `vk_pipeline` (the data) and `dagster` (Dagster's runs, event logs and schedules, through
the project's dagster.yaml), so the local setup is the production setup in miniature. With
`VK_ACCESS_TOKEN` unset, the VK emulator serves a seeded world on 127.0.0.1. Everything lands in the
environment, so Dagster processes started from here (code server, webserver, daemon, run workers)
see the same setup.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from vk_pipeline.emulator import DEMO_TOKEN, EmulatorServer, World, WorldSpec
from vk_pipeline.storage import resolve_database_url
from vk_pipeline.storage.embedded import _create_database, embedded_database_url
from vk_pipeline.storage.resource import with_dbname

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = Path(os.environ.get("VK_PIPELINE_HOME", PROJECT_ROOT / ".local"))
# A handful of groups of every kind; small enough that a first load takes seconds at 3 requests/s.
DEMO_WORLD = WorldSpec(seed=1, groups=4, posts=600, comments=12_000, special_groups=True)

# dagster.yaml reads Dagster's own storage from this variable (a SQLAlchemy URL).
ENV_DAGSTER_POSTGRES_URL = "DAGSTER_POSTGRES_URL"
DAGSTER_DBNAME = "dagster"


@dataclass
class LocalSetup:
    database_url: str
    dagster_postgres_url: str
    emulator: EmulatorServer | None

    @property
    def world(self) -> World | None:
        return self.emulator.world if self.emulator else None

    def close(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()


def demo_world(today: date | None = None) -> WorldSpec:
    """The demo world dated today (midnight UTC), so lookback windows and the daily schedule
    cover its posts; the seeded content is the same on every day, only shifted."""
    day = today or datetime.now(UTC).date()
    return replace(DEMO_WORLD, now=int(datetime.combine(day, time(), tzinfo=UTC).timestamp()))


def sqlalchemy_postgres_url(url: str) -> str:
    """A libpq URL as the SQLAlchemy URL dagster-postgres needs: SQLAlchemy 2.1 maps plain
    `postgresql://` to psycopg 3, on which dagster-postgres's NOTIFY fails, so force psycopg2.
    SQLAlchemy's own parser checks the URL (dagster-postgres hands it to SQLAlchemy anyway)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        parsed = None
    if parsed is None or parsed.get_backend_name() not in ("postgresql", "postgres"):
        # Name only the scheme: the rest may hold a password.
        scheme, sep, _ = url.partition("://")
        raise ValueError(
            f"Dagster's storage needs a postgresql:// URL, got {'scheme ' + repr(scheme) if sep else 'no URL scheme'}; "
            f"set {ENV_DAGSTER_POSTGRES_URL}"
        )
    return parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


def dagster_postgres_url(data_url: str | None) -> str:
    """Dagster's instance storage: `$DAGSTER_POSTGRES_URL`, else a `dagster` database beside the
    data database (`data_url`, or the embedded server when it is None), created if missing."""
    explicit = os.environ.get(ENV_DAGSTER_POSTGRES_URL)
    if explicit:
        return sqlalchemy_postgres_url(explicit)
    if data_url is None:
        return sqlalchemy_postgres_url(embedded_database_url(dbname=DAGSTER_DBNAME))
    _create_database(data_url, DAGSTER_DBNAME)
    return sqlalchemy_postgres_url(with_dbname(data_url, DAGSTER_DBNAME))


def dagster_home() -> Path:
    """DAGSTER_HOME under .local with the project's dagster.yaml in it."""
    home = Path(os.environ.get("DAGSTER_HOME") or LOCAL_DIR / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def start(*, emulator_port: int = 0, rate: float = 3.0) -> LocalSetup:
    explicit_data_url = os.environ.get("DATABASE_URL")
    database_url = resolve_database_url(explicit_data_url)
    os.environ["DATABASE_URL"] = database_url
    os.environ[ENV_DAGSTER_POSTGRES_URL] = dagster_url = dagster_postgres_url(explicit_data_url)
    dagster_home()
    emulator = None
    if not os.environ.get("VK_ACCESS_TOKEN"):
        # Dated a day back: the demo's simulated "day later" then still lies in the past, as
        # everything VK serves does.
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        emulator = EmulatorServer(World(demo_world(yesterday)), rate=rate, port=emulator_port)
        emulator.start()
        os.environ["VK_API_BASE_URL"] = emulator.base_url
        os.environ["VK_ACCESS_TOKEN"] = DEMO_TOKEN
    return LocalSetup(database_url, dagster_url, emulator)


def drop_dir() -> Path | None:
    """The drop folder the group-file sensor watches, once the automation package has it."""
    try:
        from vk_pipeline.automation import drop_dir as automation_drop_dir
    except ImportError:
        return None
    return Path(automation_drop_dir())
