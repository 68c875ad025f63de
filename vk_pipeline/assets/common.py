"""Pieces the three assets share: run config, metadata and progress reporting."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field, field_validator

from vk_pipeline.partitions import group_partitions
from vk_pipeline.vk import ClientStats

VK_POOL = "vk_api"
ASSET_GROUP = "vk"
# A range run holds up to this many groups; a backfill of 1,000 groups is 20 runs, not 1,000.
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=50)
# What every VK asset shares: group partitions, batched backfills, and the pool that keeps two
# steps from spending one token at once.
VK_ASSET = {
    "partitions_def": group_partitions,
    "backfill_policy": BACKFILL_POLICY,
    "pool": VK_POOL,
    "kinds": {"python", "postgres"},
    "group_name": ASSET_GROUP,
}


class CrawlConfig(dg.Config):
    """How much of each wall a run reads."""

    start_date: str | None = Field(
        default=None,
        description="ISO date (2024-01-31). On a group's first load, skip posts older than this.",
    )
    lookback_days: float = Field(
        default=3.0,
        description="Posts newer than this are re-read on refresh (edits, counters) and their "
        "comments fully re-crawled (edits, deletions).",
    )
    full_listing: bool = Field(
        default=True,
        description="On refresh, list the whole wall (1 call per 100 posts, 25 pages per "
        "request) so comment counts of old posts are fresh and new comments on them are found. "
        "Off: only new posts and the lookback window are listed.",
    )
    threads: bool = Field(default=True, description="Fetch every reply of every comment thread.")
    batch_size: int = Field(default=25, ge=1, le=25, description="API calls per execute request.")

    @field_validator("start_date")
    @classmethod
    def _iso_date(cls, value: str | None) -> str | None:
        if value is not None:
            date.fromisoformat(value)  # raises with the offending value in the message
        return value


def lookback_start(config: CrawlConfig, now: datetime) -> datetime:
    return now - timedelta(days=config.lookback_days)


def utcnow() -> datetime:
    return datetime.now(UTC)


def group_ids(context: dg.AssetExecutionContext) -> list[int]:
    return [int(k) for k in context.partition_keys]


def preview(df: pd.DataFrame, columns: list[str], rows: int = 5) -> dg.MetadataValue:
    shown = df[[c for c in columns if c in df.columns]].head(rows).copy()
    for c in shown.columns:
        if shown[c].dtype == object:
            shown[c] = shown[c].map(lambda v: (str(v)[:60] + "…") if v and len(str(v)) > 60 else v)
    return dg.MetadataValue.md(shown.to_markdown(index=False))


def run_metadata(stats: ClientStats, started: float, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        **stats.as_metadata(),
        "crawl_seconds": round(time.monotonic() - started, 2),
    }
    for key, value in extra.items():
        meta[key] = dg.MetadataValue.json(value) if isinstance(value, Mapping) else value
    return meta


class Progress:
    """Logs a line per group at most every `every` seconds while it loads, and when it is done."""

    def __init__(self, log: dg.DagsterLogManager, every: float = 10.0) -> None:
        self._log = log
        self._every = every
        self._last = 0.0

    def update(self, message: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self._every:
            self._last = now
            self._log.info(message)
