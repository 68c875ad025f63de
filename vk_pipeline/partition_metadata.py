"""Metadata for each partition of a range run, added without a query per partition, and the run's
own totals placed once rather than copied onto every partition.

Dagster's `add_asset_metadata(..., partition_key=...)` checks that the key is targeted by resolving
the run's whole partition range, and for dynamic partitions that range comes from the instance:
one query (all registered keys) per call, hundreds of calls in a run of hundreds of groups. The
keys passed here come from the run's own range, so the check is done once, through the public
call, and the rest go to the same accumulator the public call fills.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.execution.context.metadata_logging import (
    AssetMetadataHandle,
    OutputMetadataAccumulator,
)
from dagster._core.execution.context.system import StepExecutionContext


def add_partition_metadata(
    step: StepExecutionContext,
    per_key: Iterable[tuple[str, Mapping[str, Any]]],
    asset_key: dg.AssetKey | str | None = None,
) -> None:
    """`metadata` on each `(partition key, metadata)` of the step's own range."""
    pending = iter(per_key)
    first = next(pending, None)
    if first is None:
        return
    step.add_asset_metadata(first[1], asset_key=asset_key, partition_key=first[0])
    target = dg.AssetKey.from_coercible(asset_key) if asset_key else step.assets_def.key
    # One new accumulator for all the rest: Dagster's `with_additional_asset_metadata` copies and
    # type-checks every entry so far for each partition added, quadratic in a range's partitions
    # (3 of a profiled 500-group run's 37 s, `benchmarks/refresh_profile.py`).
    merged = dict(step._metadata_accumulator.per_output_metadata)
    for key, metadata in pending:
        handle = AssetMetadataHandle(asset_key=target, partition_key=key)
        merged[handle] = {**merged.get(handle, {}), **metadata}
    step._metadata_accumulator = OutputMetadataAccumulator(per_output_metadata=merged)


def is_range(step: StepExecutionContext) -> bool:
    """Whether the step's run covers more than one partition."""
    if not step.has_partitions:
        return False
    keys = step.partition_key_range
    return keys.start != keys.end


def last_written_partition(step: StepExecutionContext) -> str:
    """The partition whose materialization Dagster writes last for the step's range: it walks a
    set of the range's keys, built as here (not in range order), and that materialization becomes
    the asset's latest, the one the UI shows first."""
    partitions_def = step.assets_def.partitions_def
    assert partitions_def is not None
    with partition_loading_context(dynamic_partitions_store=step.instance):
        subset = partitions_def.empty_subset().with_partition_key_range(
            partitions_def, step.partition_key_range
        )
    return list(subset.get_partition_keys())[-1]


def add_run_totals(
    step: StepExecutionContext,
    totals: Mapping[str, Any],
    last: str | None = None,
    asset_key: dg.AssetKey | str | None = None,
) -> None:
    """A run's `totals` (its VK calls, writes, per-group table) as the asset's metadata. Dagster
    copies output metadata onto each partition's materialization of a range run: 2-8 KB of
    totals on each of 500 events per asset, most of a run's event bytes
    (`benchmarks/refresh_profile.py`). In a range run they go on the last-written partition's
    materialization only (the asset's latest), under that partition's own entries; each other
    partition keeps its own figures. `last` defaults to `last_written_partition`."""
    target = dg.AssetKey.from_coercible(asset_key) if asset_key else step.assets_def.key
    if not is_range(step):
        step.add_asset_metadata(dict(totals), asset_key=target)
        return
    last = last if last is not None else last_written_partition(step)
    own = step.get_asset_metadata(asset_key=target, partition_key=last) or {}
    add_partition_metadata(step, [(last, {**totals, **own})], target)
