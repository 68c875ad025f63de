"""`daily_refresh`: every registered group re-crawled once a day, in runs sized by VK work.

A plain `@dg.schedule`: `build_schedule_from_partitioned_job` refuses dynamic partitions. Each
tick reads the group partitions from the instance and asks for one ranged run per chunk, keyed
`refresh-<date>-<chunk>`; the scheduler does not launch a run key twice for the same tick, so a
tick evaluated again (a daemon restarted mid-tick) launches nothing new. Chunks are cut by the
VK work each group is expected to cost (`sizing.py`): quiet groups go hundreds to a run, busy
ones a few, new ones 50.
"""

from __future__ import annotations

import os
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string

from vk_pipeline.automation.chunks import run_requests
from vk_pipeline.automation.sizing import Sizing, size_runs
from vk_pipeline.jobs import crawl_job
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME, is_group_key
from vk_pipeline.storage import PostgresResource

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


def plan_refresh(keys: list[str], postgres: PostgresResource | None, when: datetime) -> Sizing:
    """Every valid key, cut into runs by expected VK work. A key that is not a group id (added
    through the UI or GraphQL) is in no range, so it cannot fail the good groups beside it."""
    return size_runs(keys, [k for k in keys if is_group_key(k)], postgres, when)


def refresh_requests(sizing: Sizing, day: str) -> list[dg.RunRequest]:
    """One ranged run per chunk, keyed by day and chunk."""
    return run_requests(
        sizing.chunks,
        run_key_prefix=f"refresh-{day}",
        tags={REFRESH_TAG: day, "vk_pipeline/trigger": SCHEDULE_NAME},
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
        description="Re-crawls every registered group once a day, in runs of about 200 VK "
        "requests of expected work (at most 500 groups; 50 for groups not loaded yet).",
    )
    def _schedule(
        context: dg.ScheduleEvaluationContext, postgres: PostgresResource
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
        sizing = plan_refresh(keys, postgres, when)
        requests = refresh_requests(sizing, day)
        context.log.info(
            f"{sizing.groups} groups in {len(requests)} runs: about "
            f"{sizing.expected_requests:g} VK requests expected for the "
            f"{sizing.groups - sizing.unknown_groups} stored, {sizing.unknown_groups} not loaded "
            f"yet" + (f"; {sizing.note}" if sizing.note else "")
        )
        return requests

    return _schedule


daily_refresh = build_daily_refresh()
