"""Metadata for each partition of a range run, added without a query per partition.

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
from dagster._core.execution.context.system import StepExecutionContext


def add_partition_metadata(
    step: StepExecutionContext,
    per_key: Iterable[tuple[str, Mapping[str, Any]]],
    asset_key: dg.AssetKey | str | None = None,
) -> None:
    """`metadata` on each `(partition key, metadata)` of the step's own range."""
    first = True
    target: dg.AssetKey | None = None
    for key, metadata in per_key:
        if first:
            step.add_asset_metadata(metadata, asset_key=asset_key, partition_key=key)
            target = dg.AssetKey.from_coercible(asset_key) if asset_key else step.assets_def.key
            first = False
            continue
        step._metadata_accumulator = step._metadata_accumulator.with_additional_asset_metadata(
            asset_key=target, metadata=metadata, partition_key=key
        )
