"""A whole pipeline on a fresh database and a fresh emulator world, for asset tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import psycopg
import pytest

from vk_pipeline.emulator import DEMO_TOKEN, EmulatorServer, World
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.resources import build_resources
from vk_pipeline.testing import crawl
from vk_pipeline.testing.worlds import ASSETS_WORLD as WORLD


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
        return crawl.as_of(self.world)

    def run_config(self, **config: Any) -> dict[str, Any]:
        config.setdefault("as_of", self.as_of)
        return crawl.crawl_run_config(config)

    def crawl(
        self, keys: list[str] | None = None, *, raise_on_error: bool = True, **config: Any
    ) -> dg.ExecuteInProcessResult:
        config.setdefault("as_of", self.as_of)
        result, _ = crawl.crawl(
            self.instance, self.resources, keys or self.keys, config, raise_on_error=raise_on_error
        )
        return result

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
    vk_config.setdefault("requests_per_second", 1000)
    # The production wiring: the tokens' budget and quotas live in this test's database.
    resources = build_resources(
        database_url=database_url,
        tokens=vk_config.pop("access_token", DEMO_TOKEN),
        vk_api_base_url=server.base_url,
        **vk_config,
    )
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
    """The metadata of an asset's latest materialization: a range run records one per partition,
    each with its own partition's figures (`dagster/row_count`, preview), and the run's totals
    on the last one written."""
    return materializations(result, asset)[-1]


def materializations(result: dg.ExecuteInProcessResult, asset: str) -> list[dict]:
    """The metadata of each of an asset's materializations, in the order they were written."""
    events = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    assert events
    return [{k: v.value for k, v in e.materialization.metadata.items()} for e in events]


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
