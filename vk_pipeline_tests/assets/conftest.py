"""A whole pipeline on a fresh database and a fresh emulator world, for asset tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import psycopg
import pytest

from vk_pipeline.assets import vk_assets
from vk_pipeline.emulator import DEMO_TOKEN, EmulatorServer, World, WorldSpec
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.storage import PostgresIOManager, PostgresResource
from vk_pipeline.vk import VKResource

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
WORLD = WorldSpec(seed=5, groups=3, posts=240, comments=4000, special_groups=True)


@dataclass
class Pipeline:
    world: World
    server: EmulatorServer
    database_url: str
    instance: dg.DagsterInstance
    resources: dict[str, Any]

    @property
    def keys(self) -> list[str]:
        return [str(g) for g in self.world.group_ids()]

    @property
    def as_of(self) -> str:
        """The world's clock: the crawl measures its windows from it, as from VK's own time."""
        return datetime.fromtimestamp(self.world.now, UTC).isoformat()

    def run_config(self, **config: Any) -> dict[str, Any]:
        config.setdefault("as_of", self.as_of)
        return {"ops": {name: {"config": config} for name in ("posts", "comments")}}

    def crawl(
        self, keys: list[str] | None = None, *, raise_on_error: bool = True, **config: Any
    ) -> dg.ExecuteInProcessResult:
        keys = keys or self.keys
        return dg.materialize(
            vk_assets,
            instance=self.instance,
            resources=self.resources,
            run_config=self.run_config(**config),
            tags={RANGE_START: keys[0], RANGE_END: keys[-1]},
            raise_on_error=raise_on_error,
        )

    def query(self, sql: str, *params: Any) -> list[tuple]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()


def make_pipeline(
    world: World, server: EmulatorServer, database_url: str, instance: dg.DagsterInstance
) -> Pipeline:
    postgres = PostgresResource(database_url=database_url)
    resources = {
        "vk": VKResource(
            access_token=DEMO_TOKEN, api_base_url=server.base_url, requests_per_second=1000
        ),
        "postgres": postgres,
        "io_manager": PostgresIOManager(postgres=postgres),
    }
    pipeline = Pipeline(world, server, database_url, instance, resources)
    instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, pipeline.keys)
    return pipeline


@pytest.fixture
def pipeline(emulator_factory, database_url) -> Iterator[Pipeline]:
    world = World(WORLD)
    server = emulator_factory(world=world)
    with dg.instance_for_test() as instance:
        yield make_pipeline(world, server, database_url, instance)
