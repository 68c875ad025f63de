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
from vk_pipeline.budget import PostgresRateBudget
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
    world: World,
    server: EmulatorServer,
    database_url: str,
    instance: dg.DagsterInstance,
    **vk_config: Any,
) -> Pipeline:
    postgres = PostgresResource(database_url=database_url)
    vk_config.setdefault("access_token", DEMO_TOKEN)
    vk_config.setdefault("requests_per_second", 1000)
    resources = {
        # The production wiring: the tokens' budget and quotas live in this test's database.
        "vk": VKResource(
            api_base_url=server.base_url,
            budget=PostgresRateBudget(postgres=postgres),
            **vk_config,
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


STATUS_OF_KIND = {
    "open": "open",
    "closed": "closed",
    "private": "private",
    "banned": "banned",
    "deleted": "deleted",
    "wall_off": "wall_disabled",
}
EVERYTHING = {"lookback_days": 100_000}  # re-read every post and every comment


def materialization(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    """The metadata of an asset's materialization; a range run records one per partition, alike."""
    events = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    assert events
    return {k: v.value for k, v in events[0].materialization.metadata.items()}


def stored_text(text: str) -> str:
    """VK's text as PostgreSQL can hold it: the one documented change is a dropped NUL."""
    return text.replace("\x00", "")


def assert_database_equals_truth(p: Pipeline) -> None:
    """Every group, post and live comment (replies included) exactly as VK serves it, each once;
    every stub of a deleted comment stored as deleted."""
    world = p.world
    statuses = dict(p.query("SELECT id, status FROM vk.groups"))
    assert statuses == {g: STATUS_OF_KIND[world.group_kind(g)] for g in world.group_ids()}
    posts = {
        (gid, pid): (text, count)
        for gid, pid, text, count in p.query(
            "SELECT group_id, id, text, comments_count FROM vk.posts WHERE NOT is_deleted"
        )
    }
    truth_posts = {
        (g, post["id"]): (stored_text(post["text"]), post["comments"]["count"])
        for g in world.group_ids()
        for post in world.posts(g)
    }
    assert posts == truth_posts
    stored = {
        (owner, cid): (pid, text, deleted)
        for owner, cid, pid, text, deleted in p.query(
            "SELECT owner_id, id, post_id, text, is_deleted FROM vk.comments"
        )
    }
    live_truth = {}
    stubs = set()
    for g in world.group_ids():
        for post in world.posts(g):
            for c in world.comments(g, post["id"]):
                if c.get("deleted"):
                    stubs.add((-g, c["id"]))
                else:
                    live_truth[(-g, c["id"])] = (post["id"], stored_text(c["text"]))
    live = {k: (pid, text) for k, (pid, text, deleted) in stored.items() if not deleted}
    assert live == live_truth
    assert stubs <= {k for k, (_, _, deleted) in stored.items() if deleted}
    # every comment counted once: no duplicates possible with the primary key, and replies are in
    assert any(True for (_, _), _v in live.items())
    [(replies,)] = p.query("SELECT count(*) FROM vk.comments WHERE thread_root_id IS NOT NULL")
    assert replies > 0
