"""The local setup shared by `make demo` and `make dev`: project dirs, Postgres, VK endpoint.

With `DATABASE_URL` unset, an embedded PostgreSQL runs from `.local/pgdata`; with `VK_ACCESS_TOKEN`
unset, the VK emulator serves a seeded world on 127.0.0.1. Everything lands in the environment, so
Dagster processes started from here (webserver, daemon, run workers) see the same setup.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from vk_pipeline.emulator import DEMO_TOKEN, EmulatorServer, World, WorldSpec
from vk_pipeline.storage import resolve_database_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = Path(os.environ.get("VK_PIPELINE_HOME", PROJECT_ROOT / ".local"))
# A handful of groups of every kind; small enough that a first load takes seconds at 3 requests/s.
DEMO_WORLD = WorldSpec(seed=1, groups=4, posts=600, comments=12_000, special_groups=True)


@dataclass
class LocalSetup:
    database_url: str
    emulator: EmulatorServer | None

    @property
    def world(self) -> World | None:
        return self.emulator.world if self.emulator else None

    def close(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()


def dagster_home() -> Path:
    """DAGSTER_HOME under .local with the project's dagster.yaml in it."""
    home = Path(os.environ.get("DAGSTER_HOME") or LOCAL_DIR / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def start(*, emulator_port: int = 0, rate: float = 3.0) -> LocalSetup:
    dagster_home()
    database_url = resolve_database_url(os.environ.get("DATABASE_URL"))
    os.environ["DATABASE_URL"] = database_url
    emulator = None
    if not os.environ.get("VK_ACCESS_TOKEN"):
        emulator = EmulatorServer(World(DEMO_WORLD), rate=rate, port=emulator_port).start()
        os.environ["VK_API_BASE_URL"] = emulator.base_url
        os.environ["VK_ACCESS_TOKEN"] = DEMO_TOKEN
    return LocalSetup(database_url, emulator)
