"""The local setup shared by `make demo` and `make dev`, and the file that lets every command find it.

With `DATABASE_URL` unset, an embedded PostgreSQL runs from `.local/pgdata` and serves two
databases: `vk_pipeline` (the data) and `dagster` (Dagster's runs, event logs and schedules, through
the project's dagster.yaml), so the local setup is the production setup in miniature. With
`VK_ACCESS_TOKEN` unset, the VK emulator serves a seeded world on 127.0.0.1. Everything lands in the
environment, so Dagster processes started from here (code server, webserver, daemon, run workers)
see the same setup.

What a setup started is also written to `$VK_PIPELINE_HOME/setup.env` (mode 0600), so a command in
another terminal (`python -m vk_pipeline groups list`) reaches the same database, Dagster instance
and emulator without settings found only in the source. Only what the setup itself created or was
given without a secret goes there: never a token of the user's, never a password.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from vk_pipeline.emulator import DEMO_TOKEN, EmulatorServer, World, WorldSpec
from vk_pipeline.storage import resolve_database_url
from vk_pipeline.storage.embedded import _create_database, embedded_database_url
from vk_pipeline.storage.resource import normalize_url, url_target, with_dbname

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_HOME = "VK_PIPELINE_HOME"
# A handful of groups of every kind; small enough that a first load takes seconds at 3 requests/s.
DEMO_WORLD = WorldSpec(seed=1, groups=4, posts=600, comments=12_000, special_groups=True)

# dagster.yaml reads Dagster's own storage from this variable (a SQLAlchemy URL).
ENV_DAGSTER_POSTGRES_URL = "DAGSTER_POSTGRES_URL"
DAGSTER_DBNAME = "dagster"
SETUP_FILE_NAME = "setup.env"

# The setup file's variables in groups that only make sense together: a group is taken from the
# file only when the environment sets none of its variables (the environment wins, and a real
# token in the environment is never sent to the emulator the file names).
SETUP_GROUPS: dict[str, tuple[str, ...]] = {
    "database": ("DATABASE_URL",),
    "dagster": ("DAGSTER_HOME", ENV_DAGSTER_POSTGRES_URL),
    "vk": ("VK_API_BASE_URL", "VK_ACCESS_TOKEN", "VK_ACCESS_TOKENS"),
    "drops": ("VK_PIPELINE_DROP_DIR",),
}
SETUP_KEYS = frozenset(k for keys in SETUP_GROUPS.values() for k in keys)


class SettingError(ValueError):
    """A setting the user can fix; the message names the variable, never a password."""


def home() -> Path:
    """`$VK_PIPELINE_HOME`, else `.local` in the checkout (in the current directory when the
    package is installed elsewhere), as the embedded server's data directory is found."""
    configured = os.environ.get(ENV_HOME)
    if configured:
        return Path(configured).expanduser()
    root = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()
    return root / ".local"


# --------------------------------------------------------------------------------------------
# Database URLs


def check_database_url(url: str, variable: str = "DATABASE_URL") -> None:
    """Refuse what libpq would misread: `not-a-url` would otherwise be tried as localhost:5432.
    URL forms are parsed by SQLAlchemy (`make_url`), key=value forms by libpq's own parser
    (psycopg's `conninfo_to_dict`). The message names the variable and at most the scheme."""
    text = url.strip()
    if "://" in text:
        scheme = text.partition("://")[0]
        try:
            parsed = make_url(text)
            conninfo_to_dict(normalize_url(text))
        except (ArgumentError, ValueError, psycopg.ProgrammingError):
            raise SettingError(
                f"{variable} is not a valid PostgreSQL URL (scheme {scheme!r}); expected "
                "postgresql://USER:PASSWORD@HOST:5432/DBNAME"
            ) from None
        if parsed.get_backend_name() not in ("postgresql", "postgres"):
            raise SettingError(
                f"{variable} names a {scheme!r} database; expected postgresql://USER@HOST/DBNAME"
            )
        return
    try:
        params = conninfo_to_dict(text) if "=" in text else None
    except psycopg.ProgrammingError:
        params = None
    if not params:
        raise SettingError(
            f"{variable} is neither a postgresql:// URL nor a libpq key=value string "
            "(host=... dbname=...)"
        )


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
        raise SettingError(
            f"Dagster's storage needs a postgresql:// URL, got {'scheme ' + repr(scheme) if sep else 'no URL scheme'}; "
            f"set {ENV_DAGSTER_POSTGRES_URL}"
        )
    return parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


def dagster_url_beside(data_url: str) -> str:
    """Dagster's storage in a `dagster` database on the data database's server."""
    return sqlalchemy_postgres_url(with_dbname(data_url, DAGSTER_DBNAME))


def dagster_postgres_url(data_url: str | None) -> str:
    """Dagster's instance storage: `$DAGSTER_POSTGRES_URL`, else a `dagster` database beside the
    data database (`data_url`, or the embedded server when it is None), created if missing."""
    explicit = os.environ.get(ENV_DAGSTER_POSTGRES_URL)
    if explicit:
        return sqlalchemy_postgres_url(explicit)
    if data_url is None:
        return sqlalchemy_postgres_url(embedded_database_url(dbname=DAGSTER_DBNAME))
    _create_database(data_url, DAGSTER_DBNAME)
    return dagster_url_beside(data_url)


def has_password(url: str) -> bool:
    try:
        if "://" in url:
            return bool(make_url(url).password)
        return bool(conninfo_to_dict(url).get("password"))
    except (ArgumentError, ValueError, psycopg.ProgrammingError):
        return True  # unreadable: assume the worst, never write it


# --------------------------------------------------------------------------------------------
# Starting the setup


@dataclass
class LocalSetup:
    database_url: str
    dagster_postgres_url: str
    emulator: EmulatorServer | None
    # The variables this setup put in place (what setup.env records).
    created: dict[str, str] = field(default_factory=dict)

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
    return replace(DEMO_WORLD, now=int(datetime.combine(day, day_time(), tzinfo=UTC).timestamp()))


def dagster_home() -> Path:
    """DAGSTER_HOME under .local with the project's dagster.yaml in it."""
    path = Path(os.environ.get("DAGSTER_HOME") or home() / "dagster_home")
    path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", path / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(path)
    return path


def start(*, emulator_port: int = 0, rate: float = 3.0) -> LocalSetup:
    explicit_data_url = os.environ.get("DATABASE_URL")
    if explicit_data_url:
        check_database_url(explicit_data_url)
    database_url = resolve_database_url(explicit_data_url)
    os.environ["DATABASE_URL"] = database_url
    os.environ[ENV_DAGSTER_POSTGRES_URL] = dagster_url = dagster_postgres_url(explicit_data_url)
    created = {
        "DATABASE_URL": database_url,
        "DAGSTER_HOME": str(dagster_home()),
        ENV_DAGSTER_POSTGRES_URL: dagster_url,
    }
    emulator = None
    if not os.environ.get("VK_ACCESS_TOKEN") and not os.environ.get("VK_ACCESS_TOKENS"):
        # Dated a day back: the demo's simulated "day later" then still lies in the past, as
        # everything VK serves does.
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        emulator = EmulatorServer(World(demo_world(yesterday)), rate=rate, port=emulator_port)
        emulator.start()
        os.environ["VK_API_BASE_URL"] = emulator.base_url
        os.environ["VK_ACCESS_TOKEN"] = DEMO_TOKEN
        created.update(VK_API_BASE_URL=emulator.base_url, VK_ACCESS_TOKEN=DEMO_TOKEN)
    if (drops := drop_dir()) is not None:
        created["VK_PIPELINE_DROP_DIR"] = str(drops)
    return LocalSetup(database_url, dagster_url, emulator, created)


def drop_dir() -> Path | None:
    """The drop folder the group-file sensor watches, once the automation package has it."""
    try:
        from vk_pipeline.automation import drop_dir as automation_drop_dir
    except ImportError:
        return None
    return Path(automation_drop_dir())


# --------------------------------------------------------------------------------------------
# setup.env: written by make dev / make demo, read by every command


def setup_path() -> Path:
    return home() / SETUP_FILE_NAME


def write_setup_file(
    setup: LocalSetup, writer: str, *, replace_running: bool = True
) -> Path | None:
    """Record `setup` for other terminals, readable by its owner only (it holds the emulator's
    token). A password-bearing URL or a token the user brought is left out. With
    `replace_running` False (`make demo`), a file whose setup still answers (a `make dev` in
    another terminal) is left alone: returns None then."""
    values = {
        k: v
        for k, v in setup.created.items()
        if k in SETUP_KEYS and not (k.endswith("_URL") and has_password(v))
    }
    path = setup_path()
    if not replace_running:
        with contextlib.suppress(SettingError):
            current = SetupFile.read(path)
            if current is not None and current.values != values and current.running():
                return None
    lines = [
        f"# The local setup `{writer}` started (pid {os.getpid()}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC).",
        "# `python -m vk_pipeline ...` reads it when the environment does not set these "
        "variables (the environment wins).",
        *(f"{k}={shlex.quote(v)}" for k, v in values.items()),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    # Created 0600 before anything is written, then moved into place: no moment when another
    # user could read the emulator's token, and no half-written file for a reader.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def command_line(args: str) -> str:
    """How to run `python -m vk_pipeline ARGS` against this setup from another terminal."""
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(Path.cwd())
    prefix = f"{ENV_HOME}={shlex.quote(str(home()))} " if os.environ.get(ENV_HOME) else ""
    return f"{prefix}{python} -m vk_pipeline {args}"


@dataclass(frozen=True)
class SetupFile:
    """A setup.env as read: its variables and when it was written."""

    path: Path
    values: dict[str, str]
    written: str  # the header line, shown when the setup is not running

    @classmethod
    def read(cls, path: Path | None = None) -> SetupFile | None:
        path = path or setup_path()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingError(f"{path}: cannot be read ({type(exc).__name__})") from None
        values: dict[str, str] = {}
        written = ""
        for n, line in enumerate(text.splitlines(), 1):
            if line.startswith("#") or not line.strip():
                written = written or line.lstrip("# ")
                continue
            key, sep, raw = line.partition("=")
            try:
                words = shlex.split(raw)
            except ValueError:
                words = None
            if not sep or key not in SETUP_KEYS or words is None or len(words) > 1:
                # Only the known variables, quoted as written: a tampered file sets nothing else.
                raise SettingError(f"{path}:{n}: not a setting this file may hold")
            values[key] = words[0] if words else ""
        return cls(path, values, written)

    def applicable(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The file's variables for the groups the environment leaves unset."""
        out: dict[str, str] = {}
        for keys in SETUP_GROUPS.values():
            if not any(environ.get(k) for k in keys):
                out.update({k: self.values[k] for k in keys if k in self.values})
        return out

    def running(self) -> bool:
        return not self.not_running(self.values)

    def not_running(self, used: Mapping[str, str]) -> list[str]:
        """What of the setup, among the variables taken from the file (`used`), no longer
        answers: the emulator's port, the PostgreSQL of the data or of Dagster."""
        down = []
        if url := used.get("VK_API_BASE_URL"):
            parts = urlsplit(url)
            if not _accepts(parts.hostname or "127.0.0.1", parts.port or 80):
                down.append(f"the VK emulator at {parts.scheme}://{parts.netloc} does not answer")
        for key in ("DATABASE_URL", ENV_DAGSTER_POSTGRES_URL):
            if (url := used.get(key)) and not _postgres_answers(url):
                t = url_target(url)
                where = t["host"] if t["host"].startswith("/") else f"{t['host']}:{t['port']}"
                down.append(f"the PostgreSQL of {key} ({where}) does not answer")
        return down


@contextlib.contextmanager
def setup_environment(setup: SetupFile | None) -> Iterator[dict[str, str]]:
    """The file's applicable variables set in `os.environ` for the block, then restored; yields
    them (empty without a file)."""
    used = setup.applicable(os.environ) if setup is not None else {}
    before = {k: os.environ.get(k) for k in used}
    os.environ.update(used)
    try:
        yield used
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _accepts(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _postgres_answers(url: str) -> bool:
    try:
        psycopg.connect(normalize_url(url), connect_timeout=3).close()
    except psycopg.OperationalError:
        return False
    return True
