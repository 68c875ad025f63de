"""The prefetch between the crawl and the writer: order, bound, errors and stopping."""

from __future__ import annotations

import threading
import time
from contextlib import closing

import pytest

from vk_pipeline.assets.prefetch import Emit, prefetched


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_items_arrive_in_order_and_the_thread_ends() -> None:
    def produce(emit: Emit[int]) -> None:
        for i in range(1_000):
            emit(i)

    assert list(prefetched(produce, 7, "prefetch-order")) == list(range(1_000))
    assert not _threads("prefetch-order")


def test_the_producer_runs_at_most_depth_items_ahead() -> None:
    emitted: list[int] = []
    calling: list[int] = []  # items whose emit the producer has called
    progress = threading.Condition()

    def produce(emit: Emit[int]) -> None:
        for i in range(100):
            with progress:
                calling.append(i)
                progress.notify_all()
            emit(i)
            emitted.append(i)

    with closing(prefetched(produce, 5, "prefetch-bound")) as items:
        assert next(items) == 0
        # One item taken and `depth` queued: the producer gets as far as calling emit for the
        # seventh item, however slow the machine (the timeout only guards a hang).
        with progress:
            assert progress.wait_for(lambda: 6 in calling, timeout=60)
    # Closing stopped the producer and joined it, so `emitted` is final: a producer without a
    # bound would have gone on past the seventh item. The queue holds `depth` items; one more
    # may be blocked in `emit`.
    assert 5 <= len(emitted) <= 7
    assert not _threads("prefetch-bound")


def test_an_error_comes_after_the_items_emitted_before_it() -> None:
    def produce(emit: Emit[int]) -> None:
        emit(1)
        emit(2)
        raise RuntimeError("VK went away")

    seen: list[int] = []
    with pytest.raises(RuntimeError, match="VK went away"):
        for item in prefetched(produce, 10, "prefetch-error"):
            seen.append(item)
    assert seen == [1, 2]


def test_closing_stops_a_blocked_producer_and_waits_for_it() -> None:
    finished = threading.Event()

    def produce(emit: Emit[int]) -> None:
        try:
            for i in range(10_000):
                emit(i)
        finally:
            finished.set()

    items = prefetched(produce, 2, "prefetch-close")
    assert next(items) == 0
    started = time.monotonic()
    items.close()
    # The producer saw the stop at its next emit and was joined before close() returned.
    assert finished.is_set()
    assert time.monotonic() - started < 5
    assert not _threads("prefetch-close")
