"""The pipeline runs itself: a drop-folder sensor registers and loads groups, a schedule refreshes.

Thin on purpose: reading and resolving files is `vk_pipeline.grouplists`; this package turns its
records into Dagster partitions, runs and asset events.
"""

from vk_pipeline.automation.analysis import analysis_automation
from vk_pipeline.automation.chunks import MAX_GROUPS_PER_RUN, chunk_keys, ranged_run_requests
from vk_pipeline.automation.dropdir import drop_dir, settle_seconds
from vk_pipeline.automation.events import GROUP_LISTS_KEY, group_lists
from vk_pipeline.automation.keys import invalid_partition_keys, remove_invalid_keys
from vk_pipeline.automation.schedules import build_daily_refresh, daily_refresh
from vk_pipeline.automation.sensors import build_group_file_sensor, group_file_sensor

__all__ = [
    "GROUP_LISTS_KEY",
    "MAX_GROUPS_PER_RUN",
    "analysis_automation",
    "build_daily_refresh",
    "build_group_file_sensor",
    "chunk_keys",
    "daily_refresh",
    "drop_dir",
    "group_file_sensor",
    "group_lists",
    "invalid_partition_keys",
    "ranged_run_requests",
    "remove_invalid_keys",
    "settle_seconds",
]
