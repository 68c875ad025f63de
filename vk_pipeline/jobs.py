"""The jobs, defined once: sensors, schedules, the demo and the tests target these objects."""

from __future__ import annotations

import warnings

import dagster as dg

from vk_pipeline.assets import vk_assets
from vk_pipeline.assets.analysis import analysis_assets
from vk_pipeline.partitions import group_partitions
from vk_pipeline.storage import DATABASE_RETRY

# A crawl run holds at most 50 new groups, or refreshes of about 200 requests' work. A refresh
# takes minutes; a first load of 50 large
# communities on one token's 3 requests/s takes hours. Past six hours a run is taken for hung:
# run monitoring (dagster.yaml `run_monitoring`) fails it and the retry resumes from what was
# committed. Below the instance's 12 h backstop (`max_runtime_seconds`) for untagged runs.
CRAWL_MAX_RUNTIME_SECONDS = 6 * 3600
MAX_RUNTIME_TAG = "dagster/max_runtime"

# The steps run one after another anyway (each needs the previous one's rows); in the run's own
# process they skip a process start-up (and a code load) per step. The Definitions' default
# executor too, so a Materialize from the UI's asset graph runs like this job.
EXECUTOR = dg.in_process_executor

# Selecting assets also selects their checks, so the checks run in the same run. The analysis
# tables of the run's groups are built in it too, after the crawl: a follow-up run per crawl
# (the automation sensor's) cost a run worker's start and up to a sensor interval each, which was
# a third of a 2,000-group refresh (benchmarks/refresh_scale.py). Their automation condition
# still rebuilds them after a crawl launched without them (Materialize in the UI); after this job
# it has nothing to do, since they were updated after the tables they read.
# The analysis assets batch 500 groups a backfill run, the VK assets 50; Dagster warns in every
# process that resolves the job and takes the smaller, which is what a crawl backfill wants.
warnings.filterwarnings("ignore", message="Asset job crawl_groups materializes assets with varying")
crawl_job = dg.define_asset_job(
    "crawl_groups",
    selection=dg.AssetSelection.assets(*vk_assets, *analysis_assets),
    partitions_def=group_partitions,
    executor_def=EXECUTOR,
    # Check steps touch Postgres too: a lost connection is retried for them as well.
    op_retry_policy=DATABASE_RETRY,
    tags={MAX_RUNTIME_TAG: str(CRAWL_MAX_RUNTIME_SECONDS)},
    description="Groups, posts, comments and authors for the selected group partitions, their "
    "checks, and the analysis tables built from them.",
)

# The analysis tables alone, e.g. a full rebuild after a change of their SQL.
analysis_job = dg.define_asset_job(
    "refresh_analysis",
    selection=dg.AssetSelection.assets(*analysis_assets),
    partitions_def=group_partitions,
    executor_def=EXECUTOR,
    op_retry_policy=DATABASE_RETRY,
    description="The analysis tables of the selected group partitions.",
)
