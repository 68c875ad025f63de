"""Fetching ahead of the writer: requests go on while the previous results are written.

The rate budget is spent by the thread that sends; if it also wrote to Postgres, every write would
leave the budget idle. The producer runs in a thread a bounded queue ahead of the caller, so
memory stays bounded by `depth` items.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import TypeVar

T = TypeVar("T")
Emit = Callable[[T], None]

# How long a blocked producer waits before it looks whether the caller has gone.
_POLL_SECONDS = 0.2


class _Stopped(BaseException):
    """Raised inside the producer once the caller stopped reading (BaseException so that no
    `except Exception` on the producer's path swallows it)."""


class _End:
    """The producer is done; carries its exception, if it ended with one."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def prefetched(produce: Callable[[Emit[T]], None], depth: int, name: str) -> Iterator[T]:
    """Runs `produce(emit)` in a thread at most `depth` items ahead of the caller.

    Items arrive in the order they were emitted. An exception of the producer is raised here
    after every item emitted before it, so the caller can keep what finished. Closing the
    iterator stops the producer at its next `emit` and waits for it, so nothing the producer
    uses (an HTTP client, a connection) is closed under it.
    """
    items: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def emit(item: T | _End) -> None:
        while not stop.is_set():
            try:
                items.put(item, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue
        raise _Stopped

    def run() -> None:
        error: BaseException | None = None
        try:
            produce(emit)
        except _Stopped:
            return
        except BaseException as exc:  # handed to the caller, which raises it
            error = exc
        with suppress(_Stopped):
            emit(_End(error))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=60)
