"""The jobs, defined once: sensors, schedules, the demo and the tests target these objects."""

from __future__ import annotations

import dagster as dg

from vk_pipeline.assets import vk_assets
from vk_pipeline.assets.analysis import analysis_assets
from vk_pipeline.partitions import group_partitions
from vk_pipeline.storage import DATABASE_RETRY

# The analysis assets ride along, so every crawl (sensor, daily refresh) leaves them current;
# selecting assets also selects their checks, so the checks run in the same run.
crawl_job = dg.define_asset_job(
    "crawl_groups",
    selection=dg.AssetSelection.assets(*vk_assets, *analysis_assets),
    partitions_def=group_partitions,
    # The steps run one after another anyway (each needs the previous one's rows); in the run's
    # own process they skip a process start-up (and a code load) per step.
    executor_def=dg.in_process_executor,
    # Checks and analysis steps touch Postgres too: a lost connection is retried for them as well.
    op_retry_policy=DATABASE_RETRY,
    description="Groups, posts and comments for the selected group partitions, their checks "
    "and the analysis tables.",
)
