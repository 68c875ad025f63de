"""The command line against the emulator, real Postgres and a real Dagster instance."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import pytest
from click.testing import CliRunner

from vk_pipeline.cli import cli as program
from vk_pipeline.emulator import DEMO_TOKEN

# What a user's shell may hold and the tests must not inherit: each test sets what it means.
SETTINGS = (
    "DATABASE_URL",
    "DAGSTER_HOME",
    "DAGSTER_POSTGRES_URL",
    "VK_API_BASE_URL",
    "VK_ACCESS_TOKEN",
    "VK_ACCESS_TOKENS",
    "VK_PIPELINE_DROP_DIR",
    "VK_PIPELINE_DEBUG",
)


@dataclass
class Ran:
    code: int
    out: str
    err: str
    exception: BaseException | None = None


def cli(*argv: str, input: str | None = None) -> Ran:
    """`python -m vk_pipeline ARGV` in this process (stdin is not a terminal, as under a pipe)."""
    result = CliRunner().invoke(program, list(argv), input=input)
    exception = result.exception if not isinstance(result.exception, SystemExit) else None
    return Ran(result.exit_code, result.stdout, result.stderr, exception)


@pytest.fixture(autouse=True)
def clean_settings(monkeypatch, tmp_path) -> None:
    """No setup file of a `make dev` running in this checkout, no settings of the shell."""
    monkeypatch.setenv("VK_PIPELINE_HOME", str(tmp_path / "vk_home"))
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def env(monkeypatch, emulator, database_url) -> Iterator[dg.DagsterInstance]:
    """What a user's shell has: VK endpoint and token, DATABASE_URL, DAGSTER_HOME."""
    monkeypatch.setenv("VK_API_BASE_URL", emulator.base_url)
    monkeypatch.setenv("VK_ACCESS_TOKEN", DEMO_TOKEN)
    monkeypatch.setenv("DATABASE_URL", database_url)
    with dg.instance_for_test() as instance:  # sets DAGSTER_HOME for the CLI to find
        yield instance
