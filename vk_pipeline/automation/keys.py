"""`invalid_partition_keys`: a partition key that can never be a group leaves the partitions.

Dagster's UI takes any text in its "add partition" box. A key that is not a VK group id is skipped
by every run (`vk_pipeline.assets.common.group_ids`) and by the daily refresh; this sensor removes
it from the group partitions, with a log line naming it. A key that an unfinished run names as an
end of its range stays until that run ends: Dagster resolves a run's partition range from its two
ends at every step, and a step would fail if one were gone.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from vk_pipeline.automation.chunks import RANGE_END_TAG, RANGE_START_TAG
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME, HOW_TO_REGISTER, is_group_key

SENSOR_NAME = "invalid_partition_keys"
PARTITION_TAG = "dagster/partition"
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def keys_held_by_unfinished_runs(instance: dg.DagsterInstance) -> set[str]:
    """Partition keys an unfinished run names in its tags (a range's ends, or its one key)."""
    held: set[str] = set()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED)):
        held.update(
            run.tags[t] for t in (RANGE_START_TAG, RANGE_END_TAG, PARTITION_TAG) if t in run.tags
        )
    return held


def remove_invalid_keys(
    instance: dg.DagsterInstance, log: Callable[[str], None]
) -> tuple[list[str], list[str]]:
    """Remove the group partition keys that are not group ids; (removed, kept for now)."""
    bad = [k for k in instance.get_dynamic_partitions(GROUP_PARTITIONS_NAME) if not is_group_key(k)]
    if not bad:
        return [], []
    held = keys_held_by_unfinished_runs(instance)
    removed = [k for k in bad if k not in held]
    for key in removed:
        instance.delete_dynamic_partition(GROUP_PARTITIONS_NAME, key)
        log(
            f"removed partition key {key!r} from '{GROUP_PARTITIONS_NAME}': it is not a VK group "
            f"id and can never be crawled. {HOW_TO_REGISTER}"
        )
    return removed, [k for k in bad if k in held]


@dg.sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Removes group partition keys that are not VK group ids (typed by hand into the "
    "UI's 'add partition' box); runs skip them meanwhile.",
)
def invalid_partition_keys(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    removed, held = remove_invalid_keys(context.instance, context.log.warning)
    parts = []
    if removed:
        parts.append(f"removed {len(removed)} key(s) that are not group ids: {removed[:10]}")
    if held:
        parts.append(f"{len(held)} such key(s) wait for the runs that name them: {held[:10]}")
    return dg.SkipReason("; ".join(parts) if parts else "every group partition key is a group id")
