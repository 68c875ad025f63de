"""Group keys -> ranged run requests: 50 groups a run or cut by weight, ranges that cover exactly the keys."""

from __future__ import annotations

import pytest

from vk_pipeline.automation.chunks import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    chunk_keys,
    consecutive_blocks,
    ranged_run_requests,
    weighted_chunks,
)

ORDER = [str(i) for i in range(1, 1001)]


def covered(order: list[str], requests) -> list[str]:
    keys = []
    for r in requests:
        lo, hi = order.index(r.tags[RANGE_START_TAG]), order.index(r.tags[RANGE_END_TAG])
        keys.extend(order[lo : hi + 1])
    return keys


@pytest.mark.parametrize("count, runs", [(1, 1), (50, 1), (51, 2), (1000, 20), (1001, 21)])
def test_chunk_counts_and_sizes(count: int, runs: int):
    chunks = chunk_keys([*ORDER, "x"], ([*ORDER, "x"])[:count])
    assert len(chunks) == runs
    assert all(len(c) <= 50 for c in chunks)
    assert max(map(len, chunks)) - min(map(len, chunks)) <= 1  # even, not 50 + 1


def test_keys_not_neighbours_in_the_instance_order_never_share_a_range():
    wanted = ORDER[10:20] + ORDER[500:505] + [ORDER[900]]
    assert consecutive_blocks(ORDER, reversed(wanted)) == [
        ORDER[10:20],
        ORDER[500:505],
        [ORDER[900]],
    ]
    requests = ranged_run_requests(ORDER, wanted, run_key_prefix="k")
    assert covered(ORDER, requests) == wanted


def test_run_keys_tags_and_unknown_keys():
    requests = ranged_run_requests(
        ORDER, [*ORDER[:120], "not-a-partition"], run_key_prefix="p", tags={"a": "b"}
    )
    assert [r.run_key for r in requests] == ["p-001", "p-002", "p-003"]
    assert [r.tags["vk_pipeline/chunk"] for r in requests] == ["1/3", "2/3", "3/3"]
    assert all(r.tags["a"] == "b" for r in requests)
    assert covered(ORDER, requests) == ORDER[:120]


def test_nothing_wanted_nothing_requested():
    assert ranged_run_requests(ORDER, [], run_key_prefix="p") == []


def test_weighted_chunks_close_before_the_budget_or_the_size_cap():
    weights = {k: 1.0 for k in ORDER}
    weights[ORDER[5]] = 50.0  # heavier than the budget: a chunk of its own
    chunks = weighted_chunks(ORDER, ORDER[:40], weights, budget=10.0, max_keys=1000)
    # As few chunks as greedy cutting makes (6), evened out: not 10, 10, 10 and a remainder of 4.
    assert [len(c) for c in chunks] == [5, 1, 9, 9, 9, 7]
    assert [k for c in chunks for k in c] == ORDER[:40]
    # The size cap holds however light the keys are.
    light = weighted_chunks(ORDER, ORDER, {}, budget=10.0, max_keys=300)
    assert [len(c) for c in light] == [250, 250, 250, 250]


def test_weighted_chunks_never_join_keys_that_are_not_neighbours():
    wanted = ORDER[:3] + ORDER[10:12]
    chunks = weighted_chunks(ORDER, wanted, {}, budget=100.0, max_keys=100)
    assert chunks == [ORDER[:3], ORDER[10:12]]
