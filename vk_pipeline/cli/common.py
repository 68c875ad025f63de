"""What every command shares: exit codes, the one-line error style, and the session that finds
the local setup and builds what a command needs through `vk_pipeline.resources` (the one wiring).

Every error a user can cause (a missing file, a bad URL, an unreachable database, a setup that is
not running) is one line on stderr naming the input, `error: <input>: <what>`; `--debug` lets the
traceback through instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import psycopg
import sqlalchemy.exc
from dagster_postgres.utils import DagsterPostgresException

from vk_pipeline import local, resources
from vk_pipeline.grouplists import GroupRegistry
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.resources import ENV_TOKEN, ENV_TOKENS
from vk_pipeline.search import SearchError, SearchInputError
from vk_pipeline.storage.resource import (
    DatabaseUnreachableError,
    normalize_url,
    scrub_secrets,
    url_target,
)
from vk_pipeline.vk import VKClient, VKError

PROG = "python -m vk_pipeline"
EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
EXIT_INTERNAL = 70  # sysexits' EX_SOFTWARE: a bug, not a mistake of the user's
ENV_DEBUG = "VK_PIPELINE_DEBUG"

T = TypeVar("T")


class CliError(Exception):
    """A problem the user can fix; printed as one line per input at fault, never traced (unless
    --debug)."""

    def __init__(self, message: str | list[str], code: int = EXIT_USAGE) -> None:
        self.lines = [message] if isinstance(message, str) else list(message)
        super().__init__("; ".join(self.lines))
        self.code = code


def one_line(text: str) -> str:
    """Messages from libpq and friends span lines ("...refused\\n\\tIs the server running...")."""
    return re.sub(r"\s*\n\s*", "; ", text.strip())


def shown(text: str) -> str:
    """`text` safe to print on one line: as it is when printable, else quoted with escapes
    (a partition key with a newline must not split the output or forge a line)."""
    return text if text.isprintable() and text.strip() == text and text else repr(text)


def _scrub(text: str, url: str | None = None) -> str:
    text = scrub_secrets(text, url or os.environ.get("DATABASE_URL"))
    for name in (
        ENV_TOKEN,
        ENV_TOKENS,
        resources.ENV_VK_ID_REFRESH_TOKEN,
        resources.ENV_SECRET_KEY,
    ):
        for token in re.split(r"[\s,]+", os.environ.get(name, "")):
            if len(token) >= 8:
                text = text.replace(token, "***")
    return text


def describe(exc: BaseException) -> tuple[list[str], int]:
    """The lines (one per input at fault) and the exit code for an exception that ends a command."""
    if isinstance(exc, CliError):
        return exc.lines, exc.code
    message, code = _describe(exc)
    return [message], code


def _describe(exc: BaseException) -> tuple[str, int]:
    if isinstance(exc, local.SettingError | SearchInputError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, SearchError):
        return str(exc), EXIT_UNAVAILABLE
    if isinstance(exc, DatabaseUnreachableError):
        return f"{_database_source()}: {one_line(str(exc))}", EXIT_UNAVAILABLE
    if isinstance(exc, VKError):
        return f"VK could not answer: {one_line(_scrub(str(exc)))}", EXIT_UNAVAILABLE
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or type(exc).__name__}", EXIT_USAGE
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", 130
    detail = one_line(_scrub(str(exc)))[:300]
    return (
        f"unexpected {type(exc).__name__}{': ' + detail if detail else ''} "
        "(a bug: run with --debug for the traceback and report it)",
        EXIT_INTERNAL,
    )


def _database_source() -> str:
    if os.environ.get("DATABASE_URL"):
        return "DATABASE_URL"
    return "the embedded PostgreSQL (DATABASE_URL is not set)"


# --------------------------------------------------------------------------------------------
# The session: one per command


@dataclass
class Session:
    """What one invocation reaches, built on first use: a command that needs no VK never asks
    for a token, and `--help` never touches a database."""

    debug: bool = False
    setup: local.SetupFile | None = None
    # Variables taken from the setup file for this invocation (the environment set the others).
    from_setup: dict[str, str] = field(default_factory=dict)
    database_url: str | None = None  # --database-url of `search`; None: the environment's
    _resources: dict[str, Any] | None = None
    _instance: dg.DagsterInstance | None = None
    _checked: bool = False
    _alive: set[str] = field(default_factory=set)
    _env_added: list[str] = field(default_factory=list)

    def check(self, *needs: str) -> None:
        """The parts of the setup file's setup this command needs answer (`needs`: the
        variables, among DATABASE_URL, DAGSTER_POSTGRES_URL, VK_API_BASE_URL), and the database
        URLs in use are URLs. Each part is checked once."""
        if not self._checked:
            url = self.database_url or os.environ.get("DATABASE_URL")
            if url:
                name = "--database-url" if self.database_url else "DATABASE_URL"
                local.check_database_url(url, name)
            if url := os.environ.get(local.ENV_DAGSTER_POSTGRES_URL):
                local.check_database_url(url, local.ENV_DAGSTER_POSTGRES_URL)
            self._checked = True
        if self.setup is None:
            return
        used = {k: v for k, v in self.from_setup.items() if k in needs and k not in self._alive}
        if self.database_url:
            used.pop("DATABASE_URL", None)
        if down := self.setup.not_running(used):
            raise CliError(
                f"{self.setup.path}: the local setup it records is not running "
                f"({'; '.join(down)}): start it with `make dev`, or set DATABASE_URL, "
                "DAGSTER_HOME and VK_API_BASE_URL / VK_ACCESS_TOKEN yourself",
                EXIT_UNAVAILABLE,
            )
        self._alive.update(used)

    def resources(self) -> dict[str, Any]:
        if self._resources is None:
            self.check("DATABASE_URL")
            self._resources = resources.build_resources(database_url=self.database_url)
        return self._resources

    def postgres(self) -> Any:
        return self.resources()["postgres"]

    def registry(self) -> GroupRegistry:
        return GroupRegistry(self.postgres())

    @contextmanager
    def vk_client(self) -> Iterator[VKClient]:
        """The client every entry point uses: the whole token pool, the shared rate budget."""
        self.check("VK_API_BASE_URL")
        if not (
            os.environ.get(ENV_TOKENS)
            or os.environ.get(ENV_TOKEN)
            or os.environ.get(resources.ENV_VK_ID_REFRESH_TOKEN)
        ):
            raise CliError(
                f"{ENV_TOKEN} (or {ENV_TOKENS}) is not set, nor in "
                f"{local.setup_path()}: communities are resolved through the VK API "
                "(start `make dev` for the local emulator)"
            )
        with resources.vk_client(self.resources()) as client:
            yield client

    # -- the Dagster instance ------------------------------------------------------------------

    def instance(self) -> dg.DagsterInstance:
        if self._instance is None:
            self.check(local.ENV_DAGSTER_POSTGRES_URL)
            if not os.environ.get("DAGSTER_HOME"):
                raise CliError(
                    f"DAGSTER_HOME is not set, nor in "
                    f"{local.setup_path()}: start `make dev`, or point DAGSTER_HOME at the "
                    "Dagster instance the daemon uses",
                    EXIT_UNAVAILABLE,
                )
            derive = not os.environ.get(local.ENV_DAGSTER_POSTGRES_URL) and os.environ.get(
                "DATABASE_URL"
            )
            if derive and self._reads_dagster_postgres_url():
                # As `make dev` derives it: a `dagster` database beside the data database.
                os.environ[local.ENV_DAGSTER_POSTGRES_URL] = local.dagster_url_beside(
                    os.environ["DATABASE_URL"]
                )
                self._env_added.append(local.ENV_DAGSTER_POSTGRES_URL)
            self._check_dagster_storage()
            self._instance = self.dagster(dg.DagsterInstance.get)
        return self._instance

    @staticmethod
    def _reads_dagster_postgres_url() -> bool:
        """Whether the instance's dagster.yaml takes its storage from DAGSTER_POSTGRES_URL (the
        project's does; a test instance may not)."""
        config = Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml"
        try:
            return local.ENV_DAGSTER_POSTGRES_URL in config.read_text(encoding="utf-8")
        except OSError:
            return False

    def _check_dagster_storage(self) -> None:
        """One connection first: dagster-postgres retries a refused one five times and then
        reports only "too many retries", without libpq's reason."""
        url = os.environ.get(local.ENV_DAGSTER_POSTGRES_URL)
        if not url or not self._reads_dagster_postgres_url():
            return
        try:
            psycopg.connect(normalize_url(url), connect_timeout=5).close()
        except psycopg.Error as exc:
            error = CliError(
                f"{self._dagster_storage()}: cannot connect ({one_line(_scrub(str(exc), url))})",
                EXIT_UNAVAILABLE,
            )
        else:
            return
        raise error

    def dagster(self, call: Callable[[], T]) -> T:
        """`call` on Dagster's storage, its connection errors as one line naming the storage."""
        try:
            return call()
        except sqlalchemy.exc.OperationalError as exc:
            error = CliError(
                f"{self._dagster_storage()}: cannot connect ({one_line(_scrub(str(exc.orig)))})",
                EXIT_UNAVAILABLE,
            )
        except DagsterPostgresException as exc:
            error = CliError(
                f"{self._dagster_storage()}: {one_line(_scrub(str(exc)))}", EXIT_UNAVAILABLE
            )
        except (dg.DagsterInvariantViolationError, dg.DagsterInvalidConfigError) as exc:
            error = CliError(
                f"the Dagster instance in DAGSTER_HOME={os.environ.get('DAGSTER_HOME')} cannot "
                f"be loaded: {one_line(_scrub(str(exc)))[:300]}",
                EXIT_UNAVAILABLE,
            )
        raise error

    def _dagster_storage(self) -> str:
        url = os.environ.get(local.ENV_DAGSTER_POSTGRES_URL)
        if not url:
            return f"Dagster's storage (DAGSTER_HOME={os.environ.get('DAGSTER_HOME')})"
        t = url_target(url)
        source = local.ENV_DAGSTER_POSTGRES_URL
        if source in self._env_added:
            source = f"{source} unset, so beside DATABASE_URL"
        return (
            f"Dagster's storage ({source}: host {t['host']}, port {t['port']}, "
            f"database {t['dbname']!r})"
        )

    def partition_keys(self) -> list[str]:
        instance = self.instance()
        return self.dagster(lambda: instance.get_dynamic_partitions(GROUP_PARTITIONS_NAME))

    def close(self) -> None:
        if self._instance is not None:
            self._instance.dispose()
            self._instance = None
        for name in self._env_added:
            os.environ.pop(name, None)
        self._env_added.clear()
