"""A drop folder, the emulator, a fresh database and a real Dagster instance for sensor tests.

`Harness.apply` does what the daemon does with a tick's result (add the partitions, launch each
run key once, keep the cursor); `test_daemon.py` checks the same behaviour through the daemon's
own tick code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest

from vk_pipeline.assets import vk_assets
from vk_pipeline.assets.analysis import analysis_assets
from vk_pipeline.automation import build_group_file_sensor, group_lists
from vk_pipeline.automation.chunks import RANGE_END_TAG, RANGE_START_TAG
from vk_pipeline.emulator import DEMO_TOKEN, EmulatorServer, World, WorldSpec
from vk_pipeline.grouplists import GroupRegistry
from vk_pipeline.jobs import crawl_job
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.resources import build_resources
from vk_pipeline.storage import PostgresResource
from vk_pipeline.testing.databases import create_database, drop_database

# Enough communities for files that need several runs.
AUTOMATION_WORLD = WorldSpec(seed=21, groups=130, posts=260, comments=400, special_groups=True)


@pytest.fixture(scope="session")
def automation_world() -> World:
    return World(AUTOMATION_WORLD)


def resources_for(server: EmulatorServer, database_url: str, **vk: Any) -> dict[str, Any]:
    return build_resources(
        database_url=database_url,
        tokens=DEMO_TOKEN,
        vk_api_base_url=server.base_url,
        requests_per_second=1000,
        **vk,
    )


@dataclass
class Harness:
    folder: Path
    server: EmulatorServer
    instance: dg.DagsterInstance
    resources: dict[str, Any]
    sensor: dg.SensorDefinition
    launched: dict[str, dg.RunRequest] = field(default_factory=dict)
    cursor: str | None = None

    @property
    def world(self) -> World:
        return self.server.world

    @property
    def registry(self) -> GroupRegistry:
        return GroupRegistry(self.resources["postgres"])

    @property
    def defs(self) -> dg.Definitions:
        return dg.Definitions(
            assets=[*vk_assets, group_lists, *analysis_assets],
            jobs=[crawl_job],
            sensors=[self.sensor],
            resources=self.resources,
        )

    def drop(self, name: str, content: str | bytes, *, age: float = 60.0) -> Path:
        """A file as a person leaves it: written, then untouched for `age` seconds."""
        path = self.folder / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        then = time.time() - age
        os.utime(path, (then, then))
        return path

    def tick(self, cursor: str | bool | None = True) -> dg.SensorResult:
        """Evaluate the sensor; `cursor=True` uses the cursor the last applied tick left."""
        use = self.cursor if cursor is True else cursor
        with dg.build_sensor_context(
            instance=self.instance, definitions=self.defs, resources=self.resources, cursor=use
        ) as context:
            result = self.sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    def apply(self, result: dg.SensorResult, *, keep_cursor: bool = True) -> list[dg.RunRequest]:
        """The daemon's part: partitions first, then each run key launched once, then the cursor."""
        for request in result.dynamic_partitions_requests or []:
            assert isinstance(request, dg.AddDynamicPartitionsRequest)
            missing = [
                k
                for k in request.partition_keys
                if not self.instance.has_dynamic_partition(GROUP_PARTITIONS_NAME, k)
            ]
            self.instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, missing)
        new = []
        for run in result.run_requests or []:
            assert run.run_key
            if run.run_key not in self.launched:
                self.launched[run.run_key] = run
                new.append(run)
        if keep_cursor:
            self.cursor = result.cursor
        return new

    def step(self) -> tuple[dg.SensorResult, list[dg.RunRequest]]:
        result = self.tick()
        return result, self.apply(result)

    def partitions(self) -> list[str]:
        return list(self.instance.get_dynamic_partitions(GROUP_PARTITIONS_NAME))

    def keys_of(self, run: dg.RunRequest) -> list[str]:
        order = self.partitions()
        start, end = order.index(run.tags[RANGE_START_TAG]), order.index(run.tags[RANGE_END_TAG])
        assert start <= end
        return order[start : end + 1]


REGISTRY_TABLES = (
    "group_list_members",
    "group_lists",
    "registered_groups",
    "group_file_rejections",
    "group_files",
    "group_file_paths",
)


@pytest.fixture(scope="module")
def module_database(pg_admin_url: str) -> Iterator[str]:
    """One migrated database per module; `registry_db` empties the group-list tables per test."""
    url = create_database(pg_admin_url)
    PostgresResource(database_url=url).ensure_schema()
    try:
        yield url
    finally:
        drop_database(pg_admin_url, url)


@pytest.fixture
def registry_db(module_database: str) -> str:
    with psycopg.connect(module_database) as conn:
        conn.execute("TRUNCATE " + ", ".join(f"vk.{t}" for t in REGISTRY_TABLES))
    return module_database


@pytest.fixture
def harness(
    tmp_path: Path, emulator_factory, automation_world: World, registry_db: str
) -> Iterator[Harness]:
    database_url = registry_db
    folder = tmp_path / "drops"
    folder.mkdir()
    server = emulator_factory(world=automation_world)
    with dg.instance_for_test() as instance:
        yield Harness(
            folder,
            server,
            instance,
            resources_for(server, database_url, max_attempts=2),
            build_group_file_sensor(folder=folder, settle=0),
        )
