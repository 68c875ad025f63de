"""`daily_refresh`: every registered group re-crawled once a day, 50 groups a run.

A plain `@dg.schedule`: `build_schedule_from_partitioned_job` refuses dynamic partitions. Each
tick reads the group partitions from the instance and asks for one ranged run per chunk, keyed
`refresh-<date>-<chunk>`; the scheduler does not launch a run key twice for the same tick, so a
tick evaluated again (a daemon restarted mid-tick) launches nothing new.
"""

from __future__ import annotations

import os
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string

from vk_pipeline.automation.chunks import ranged_run_requests
from vk_pipeline.jobs import crawl_job
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME, is_group_key

SCHEDULE_NAME = "daily_refresh"
ENV_CRON = "VK_PIPELINE_REFRESH_CRON"
ENV_TIMEZONE = "VK_PIPELINE_REFRESH_TIMEZONE"
DEFAULT_CRON = "0 3 * * *"
DEFAULT_TIMEZONE = "Europe/Moscow"
REFRESH_TAG = "vk_pipeline/refresh_date"


def refresh_cron() -> str:
    cron = os.environ.get(ENV_CRON, DEFAULT_CRON).strip()
    if not is_valid_cron_string(cron):
        raise ValueError(f"{ENV_CRON}={cron!r} is not a cron expression (e.g. {DEFAULT_CRON!r})")
    return cron


def refresh_timezone() -> str:
    name = os.environ.get(ENV_TIMEZONE, DEFAULT_TIMEZONE).strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{ENV_TIMEZONE}={name!r} is not a time zone (e.g. 'Europe/Moscow')"
        ) from None
    return name


def refresh_requests(keys: list[str], day: str, size: int | None = None) -> list[dg.RunRequest]:
    """Ranged run requests covering every key that is a group id, keyed by day and chunk. A key
    that is not one (typed by hand into the UI) is in no range: ranges are cut around it."""
    extra = {"size": size} if size else {}
    return ranged_run_requests(
        keys,
        [k for k in keys if is_group_key(k)],
        run_key_prefix=f"refresh-{day}",
        tags={REFRESH_TAG: day, "vk_pipeline/trigger": SCHEDULE_NAME},
        **extra,
    )


def build_daily_refresh(
    *, cron: str | None = None, timezone: str | None = None
) -> dg.ScheduleDefinition:
    tz = timezone or refresh_timezone()

    @dg.schedule(
        name=SCHEDULE_NAME,
        cron_schedule=cron or refresh_cron(),
        execution_timezone=tz,
        job=crawl_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Re-crawls every registered group once a day, at most 50 groups per run.",
    )
    def _schedule(
        context: dg.ScheduleEvaluationContext,
    ) -> list[dg.RunRequest] | dg.SkipReason:
        keys = list(context.instance.get_dynamic_partitions(GROUP_PARTITIONS_NAME))
        if not keys:
            return dg.SkipReason(
                "no groups registered yet: drop a group list into the drop folder "
                "or run `python -m vk_pipeline groups add`"
            )
        bad = [k for k in keys if not is_group_key(k)]
        if bad:
            context.log.warning(
                f"skipped {len(bad)} partition key(s) that are not group ids: {bad[:10]} "
                "(the invalid_partition_keys sensor removes them)"
            )
        if len(bad) == len(keys):
            return dg.SkipReason(f"no partition key is a group id: {bad[:10]}")
        when = context.scheduled_execution_time or datetime.now(ZoneInfo(tz))
        day = when.astimezone(ZoneInfo(tz)).date().isoformat()
        requests = refresh_requests(keys, day)
        context.log.info(f"{len(keys) - len(bad)} groups in {len(requests)} runs")
        return requests

    return _schedule


daily_refresh = build_daily_refresh()
