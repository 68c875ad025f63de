"""Group keys -> ranged run requests, for the sensor and the schedule alike.

A run over a partition range is one run for many groups (a run costs seconds of overhead here;
1,000 groups must be a few runs, not 1,000). A range covers every key between its ends in the
instance's order (insertion order for dynamic partitions), so keys are only grouped where they
are consecutive in that order.

New groups go at most 50 to a run (their size is unknown until their first load). Groups already
stored can be cut by the VK work each is expected to cost (`weighted_chunks`): a refresh of quiet
groups is then a few large runs, and a run of busy ones stays short.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import dagster as dg

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
CHUNK_TAG = "vk_pipeline/chunk"
GROUPS_TAG = "vk_pipeline/groups"
# Matches the assets' BackfillPolicy.multi_run(50): a refresh run and a backfill run are alike.
MAX_GROUPS_PER_RUN = 50
# Halvings of the limits `weighted_chunks` tries while evening its chunks out.
BALANCE_STEPS = 20


def consecutive_blocks(order: Sequence[str], wanted: Iterable[str]) -> list[list[str]]:
    """`wanted` keys (those present in `order`) as maximal runs of neighbours in `order`."""
    position = {key: i for i, key in enumerate(order)}
    indexes = sorted({position[k] for k in wanted if k in position})
    blocks: list[list[str]] = []
    for i in indexes:
        if blocks and position[blocks[-1][-1]] == i - 1:
            blocks[-1].append(order[i])
        else:
            blocks.append([order[i]])
    return blocks


def chunk_keys(
    order: Sequence[str], wanted: Iterable[str], size: int = MAX_GROUPS_PER_RUN
) -> list[list[str]]:
    """Consecutive blocks cut into near-equal chunks of at most `size` keys."""
    chunks: list[list[str]] = []
    for block in consecutive_blocks(order, wanted):
        pieces = math.ceil(len(block) / size)
        base, extra = divmod(len(block), pieces)
        start = 0
        for p in range(pieces):
            end = start + base + (1 if p < extra else 0)
            chunks.append(block[start:end])
            start = end
    return chunks


def weighted_chunks(
    order: Sequence[str],
    wanted: Iterable[str],
    weights: Mapping[str, float],
    *,
    budget: float,
    max_keys: int,
) -> list[list[str]]:
    """Consecutive blocks cut into as few chunks as `budget` and `max_keys` allow, as even as
    that count allows (a key heavier than the budget is a chunk of its own).

    Greedy cutting alone fills every chunk to a limit and leaves the rest to the last one: 2,005
    quiet groups at 500 a run would be 500, 500, 500, 500 and 5, a whole run (a worker start,
    its events) for five groups, and the widest run sets when the refresh ends. So the limits are
    scaled down as far as the chunk count stays the fewest: 401 five times."""
    blocks = consecutive_blocks(order, wanted)

    def cut(scale: float) -> list[list[str]]:
        return _greedy(blocks, weights, budget * scale, max(1, int(max_keys * scale)))

    fewest = len(cut(1.0))
    low, high = 0.0, 1.0
    for _ in range(BALANCE_STEPS):
        scale = (low + high) / 2
        if len(cut(scale)) > fewest:
            low = scale
        else:
            high = scale
    return cut(high)


def _greedy(
    blocks: list[list[str]], weights: Mapping[str, float], budget: float, max_keys: int
) -> list[list[str]]:
    """Each block cut greedily: a chunk closes before its weight would pass `budget` or its size
    `max_keys`."""
    chunks: list[list[str]] = []
    for block in blocks:
        current: list[str] = []
        load = 0.0
        for key in block:
            weight = max(0.0, weights.get(key, 0.0))
            if current and (load + weight > budget or len(current) >= max_keys):
                chunks.append(current)
                current, load = [], 0.0
            current.append(key)
            load += weight
        if current:
            chunks.append(current)
    return chunks


def ranged_run_requests(
    order: Sequence[str],
    wanted: Iterable[str],
    *,
    run_key_prefix: str,
    tags: Mapping[str, str] | None = None,
    size: int = MAX_GROUPS_PER_RUN,
) -> list[dg.RunRequest]:
    """One run request per chunk of at most `size` keys (see `run_requests`)."""
    return run_requests(chunk_keys(order, wanted, size), run_key_prefix=run_key_prefix, tags=tags)


def run_requests(
    chunks: Sequence[Sequence[str]],
    *,
    run_key_prefix: str,
    tags: Mapping[str, str] | None = None,
) -> list[dg.RunRequest]:
    """One ranged run request per chunk; run keys `<prefix>-<n>` so a repeated request launches
    once."""
    return [
        dg.RunRequest(
            run_key=f"{run_key_prefix}-{n:03d}",
            tags={
                **(tags or {}),
                RANGE_START_TAG: chunk[0],
                RANGE_END_TAG: chunk[-1],
                CHUNK_TAG: f"{n}/{len(chunks)}",
                GROUPS_TAG: str(len(chunk)),
            },
        )
        for n, chunk in enumerate(chunks, start=1)
    ]
