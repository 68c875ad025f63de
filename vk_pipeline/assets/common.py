"""Pieces the three assets share: run config, metadata and progress reporting."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field, field_validator

from vk_pipeline.assets.refresh import RefreshPolicy
from vk_pipeline.partition_metadata import add_partition_metadata
from vk_pipeline.partitions import (
    InvalidGroupKeyError,
    group_partitions,
    invalid_group_keys,
    is_group_key,
)
from vk_pipeline.vk import ClientStats, VKFatalError, VKQuotaError

VK_POOL = "vk_api"
ASSET_GROUP = "vk"
# A range run holds up to this many groups; a backfill of 1,000 groups is 20 runs, not 1,000.
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=50)
# The analysis tables follow every crawl, however it was launched (the sensor, the daily refresh,
# Materialize in the UI): a partition whose groups, posts or comments were materialized since it
# was last built is built again once no crawl of it is under way. The automation sensor
# (`analysis_automation` in vk_pipeline.automation) evaluates this; it runs by default.
ANALYSIS_AUTOMATION = dg.AutomationCondition.eager()
# Analysis runs are Postgres only (no VK budget), and a group with nothing new costs one shared
# query: after a 2,000-group refresh, the follow-up is 4 runs, not 40 starts of a run worker.
ANALYSIS_BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=500)
# The daily refresh runs every 24 h; a group whose data is older than a day and a half missed
# at least one refresh, which the UI then shows.
FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=36), warn_window=timedelta(hours=26)
)
# Transient trouble that outlived the client's own retries (VK or the network down for minutes, a
# lost database connection) is retried by Dagster; work is committed as it goes, so a retry only
# redoes what had not landed. Errors a retry cannot fix end the step at once (`failing_fast`).
VK_RETRY = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
# What every VK asset shares: group partitions, batched backfills, freshness, retries, and the
# pool that bounds how many VK steps run at once (they share the rate budget of their tokens).
VK_ASSET = {
    "partitions_def": group_partitions,
    "backfill_policy": BACKFILL_POLICY,
    "pool": VK_POOL,
    "kinds": {"python", "postgres"},
    "group_name": ASSET_GROUP,
    "freshness_policy": FRESHNESS,
    "retry_policy": VK_RETRY,
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
    verify_days: float = Field(
        default=7.0,
        gt=0,
        description="Every stored post's comments are re-read at least this often, so silent "
        "edits and deletions on old posts (which leave comments.count as it was) arrive within "
        "this many days. The cost is spread evenly: about 1/verify_days of the comment pages a day.",
    )
    fresh_hours: float = Field(
        default=12.0,
        ge=0,
        description="A post whose comments were verified less than this long ago is not re-read "
        "for the lookback window or the staleness budget, so a rerun after a failure resumes "
        "instead of starting over. Posts whose comment count moved are always re-read.",
    )
    as_of: str | None = Field(
        default=None,
        description="The crawl's clock as an ISO timestamp (default: now). Windows, sync and "
        "tombstone times are measured from it; set it to replay against data dated elsewhere "
        "(the emulator's world is dated in the past).",
    )

    @field_validator("start_date")
    @classmethod
    def _iso_date(cls, value: str | None) -> str | None:
        if value is not None:
            date.fromisoformat(value)  # raises with the offending value in the message
        return value

    @field_validator("as_of")
    @classmethod
    def _iso_timestamp(cls, value: str | None) -> str | None:
        if value is not None:
            datetime.fromisoformat(value)
        return value

    def now(self) -> datetime:
        """The crawl's clock: `as_of` when set, else the wall clock (UTC)."""
        if self.as_of is None:
            return datetime.now(UTC)
        stamp = datetime.fromisoformat(self.as_of)
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)

    def policy(self) -> RefreshPolicy:
        """This run's refresh policy, on the crawl's clock."""
        return RefreshPolicy(
            now=self.now(),
            lookback_days=self.lookback_days,
            verify_days=self.verify_days,
            fresh_hours=self.fresh_hours,
            start_date=date.fromisoformat(self.start_date) if self.start_date else None,
            full_listing=self.full_listing,
        )


SKIPPED = "skipped"


def group_ids(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> list[int]:
    """The run's group ids. A key that is not one (typed by hand into the UI's "add partition"
    box) is skipped with a warning and the rest of the run goes on: one bad key must not fail the
    groups beside it, nor make Dagster retry the whole run for it. No call is made for it, and
    the `invalid_partition_keys` sensor removes it from the partitions."""
    keys = list(context.partition_keys)
    bad = invalid_group_keys(keys)
    if bad:
        context.log.warning(f"{InvalidGroupKeyError(bad)} Skipped; the run's other groups go on.")
    return [int(k) for k in keys if is_group_key(k)]


# Groups named in a run's `per_group` table. Dagster copies a range run's metadata onto every
# partition's materialization, so a table of every group made a 500-group run write (and a check
# step read back) 500 × 500 entries; each partition carries its own figures anyway.
PER_GROUP_SHOWN = 50
# Characters of a text shown in a preview cell.
PREVIEW_WIDTH = 60


def per_group_table(per_group: Mapping[str, Any]) -> dict[str, Any]:
    """The run's first `PER_GROUP_SHOWN` groups of `per_group`, as run metadata."""
    return dict(list(per_group.items())[:PER_GROUP_SHOWN])


def partition_metadata(
    context: dg.AssetExecutionContext,
    per_group: Mapping[int, Mapping[str, Any]],
    asset_key: str | None = None,
) -> None:
    """Each partition's own metadata on its own materialization (a range run records one per
    partition, and without this each would carry the run's totals and another group's rows).
    A key that is not a group id says it was skipped."""
    entries: list[tuple[str, dict[str, Any]]] = []
    for key in context.partition_keys:
        if not is_group_key(key):
            meta: dict[str, Any] = {
                SKIPPED: f"{key!r} is not a VK group id: nothing was read or written for it",
                "dagster/row_count": 0,
            }
        else:
            meta = {
                k: dg.MetadataValue.json(v) if isinstance(v, Mapping) else v
                for k, v in per_group.get(int(key), {}).items()
            }
        if meta:
            entries.append((key, meta))
    step = context.op_execution_context._step_execution_context
    add_partition_metadata(step, entries, asset_key)


@contextmanager
def failing_fast() -> Iterator[None]:
    """VK errors no retry can fix (a rejected token, a spent daily quota) fail the step at once
    with VK's reason; everything committed before stays, and the next run continues from it."""
    try:
        yield
    except VKQuotaError as error:
        raise dg.Failure(
            description=f"{error}. What was read before the stop is stored; the next run "
            "continues with the rest.",
            metadata={"method": error.method, "vk_error_code": str(error.code)},
            allow_retries=False,
        ) from None
    except VKFatalError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None


def _cell(value: Any) -> str:
    if value is None or value is pd.NaT or value is pd.NA:
        return ""
    if isinstance(value, float):
        return "" if value != value else f"{value:g}"
    text = str(value)
    if len(text) > PREVIEW_WIDTH:
        text = text[:PREVIEW_WIDTH] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A pipe table of `rows`, as the UI renders markdown metadata. Written here rather than with
    pandas' `to_markdown` (tabulate), which took ~5 ms a table: a 500-group run writes ~2,500
    previews, one per partition and asset (benchmarks/refresh_profile.py)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def preview(
    data: pd.DataFrame | Sequence[Mapping[str, Any]], columns: list[str], rows: int = 5
) -> dg.MetadataValue:
    """The first `rows` rows of `data` (a frame, or row dicts as the crawl builds them) in
    `columns` (those it has), long texts cut. The crawl steps pass their row dicts: a five-row
    frame per group cost ~3 ms of pandas, 2.4 s of a profiled 500-group posts step."""
    if isinstance(data, pd.DataFrame):
        shown = [c for c in columns if c in data.columns]
        values: Iterable[Sequence[Any]] = data[shown].head(rows).itertuples(index=False, name=None)
    else:
        head = list(data[:rows])
        shown = [c for c in columns if head and c in head[0]]
        values = ([row.get(c) for c in shown] for row in head)
    return dg.MetadataValue.md(markdown_table(shown, values))


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

    def __init__(self, log: Callable[[str], None], every: float = 10.0) -> None:
        self._log = log
        self._every = every
        self._last = 0.0

    def update(self, message: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self._every:
            self._last = now
            self._log(message)
