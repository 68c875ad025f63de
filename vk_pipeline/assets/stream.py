"""What the posts and comments crawls share around their own logic: a client from the resource at
the run's batch size, a fetch thread a bounded queue ahead of the writer, and run metadata filled
in when the stream ends, however it ends."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any, TypeVar

import dagster as dg

from vk_pipeline.assets.common import CrawlConfig, Progress, run_metadata
from vk_pipeline.assets.prefetch import Emit, prefetched
from vk_pipeline.vk import VKResource

T = TypeVar("T")


class CrawlStream:
    """Base of an asset's chunk stream: subclasses yield frames, `TableWrite`s and `COMMIT`s from
    `chunks()`; `metadata` is what the IO manager attaches to the materialization."""

    def __init__(
        self, context: dg.AssetExecutionContext, config: CrawlConfig, vk: VKResource
    ) -> None:
        self.context = context
        self.config = config
        self.policy = config.policy()
        self.now = self.policy.now
        self.client = vk.get_client(warn=context.log.warning)
        self.client.execute_batch_size = config.batch_size
        self.metadata: dict[str, Any] = {}
        self.progress = Progress(context.log.info)
        self._started = time.monotonic()

    @contextmanager
    def fetching(
        self, produce: Callable[[Emit[T]], None], depth: int, name: str
    ) -> Iterator[Iterator[T]]:
        """What `produce` fetches, in order, at most `depth` items ahead. The fetch thread is
        stopped and joined before the client it sends with is closed."""
        with self.client, closing(prefetched(produce, depth, name)) as items:
            yield items

    def finish(self, **extra: Any) -> None:
        """Requests, calls, errors and time of the whole stream, and `extra`, as metadata."""
        self.metadata.update(run_metadata(self.client.stats, self._started, **extra))
