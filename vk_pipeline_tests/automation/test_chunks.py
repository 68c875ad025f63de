"""Group keys -> ranged run requests: at most 50 groups a run, ranges that cover exactly the keys."""

from __future__ import annotations

import pytest

from vk_pipeline.automation.chunks import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    chunk_keys,
    consecutive_blocks,
    ranged_run_requests,
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
