"""A ranged crawl of the VK assets through Dagster, as the tests and benchmarks run it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from vk_pipeline.assets import vk_assets
from vk_pipeline.automation.chunks import RANGE_END_TAG, RANGE_START_TAG
from vk_pipeline.emulator import World
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME


def as_of(world: World) -> str:
    """The world's clock: a crawl measures its windows from it, as from VK's own time."""
    return datetime.fromtimestamp(world.now, UTC).isoformat()


def range_tags(keys: list[str]) -> dict[str, str]:
    """The tags of one run over the partition range `keys[0]`..`keys[-1]`."""
    return {RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]}


def crawl_run_config(
    config: dict[str, Any] | None = None, *, log_level: str | None = None
) -> dict[str, Any]:
    """Run config giving `posts` and `comments` the same `CrawlConfig` fields."""
    run_config: dict[str, Any] = {}
    if config:
        run_config["ops"] = {name: {"config": dict(config)} for name in ("posts", "comments")}
    if log_level:
        run_config["loggers"] = {"console": {"config": {"log_level": log_level}}}
    return run_config


def register(instance: dg.DagsterInstance, keys: list[str]) -> None:
    known = set(instance.get_dynamic_partitions(GROUP_PARTITIONS_NAME))
    instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, [k for k in keys if k not in known])


def crawl(
    instance: dg.DagsterInstance,
    resources: dict[str, Any],
    keys: list[str],
    config: dict[str, Any] | None = None,
    *,
    raise_on_error: bool = False,
    log_level: str | None = "WARNING",
) -> tuple[dg.ExecuteInProcessResult, float]:
    """One ranged run of groups → posts → comments over `keys` (registered first if needed);
    its result and wall seconds. The console logs warnings only: the event log keeps all."""
    register(instance, keys)
    started = time.monotonic()
    result = dg.materialize(
        vk_assets,
        instance=instance,
        resources=resources,
        run_config=crawl_run_config(config, log_level=log_level),
        tags=range_tags(keys),
        raise_on_error=raise_on_error,
    )
    return result, time.monotonic() - started


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    """Each asset's metadata from its latest materialization, which carries the run's totals (a
    range run's others carry their own partition's `dagster/row_count`, preview and figures)."""
    return {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }
