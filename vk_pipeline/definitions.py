"""Assembles the code location: assets, checks, jobs, automation and the resources they run with.

Nothing is decided here: resources come from `vk_pipeline.resources` (the same wiring every entry
point uses), jobs from `vk_pipeline.jobs`.
"""

import warnings

import dagster as dg

# `backfill_policy` (ranged backfills of 50 groups a run) is a beta parameter, and Dagster warns once
# per asset in every process that loads the assets (code server, each run worker and step). Filtered
# here, where the code location is defined, before the assets are imported, so logs stay readable.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from vk_pipeline.assets import vk_assets
from vk_pipeline.assets.analysis import analysis_assets
from vk_pipeline.assets.checks import vk_checks
from vk_pipeline.automation import (
    analysis_automation,
    daily_refresh,
    group_file_sensor,
    group_lists,
    invalid_partition_keys,
)
from vk_pipeline.jobs import EXECUTOR, analysis_job, crawl_job
from vk_pipeline.resources import build_resources

defs = dg.Definitions(
    # Code references: each asset's page links to its source file and line.
    assets=dg.with_source_code_references([*vk_assets, group_lists, *analysis_assets]),
    asset_checks=vk_checks,
    jobs=[crawl_job, analysis_job],
    sensors=[group_file_sensor, invalid_partition_keys, analysis_automation],
    schedules=[daily_refresh],
    resources=build_resources(),
    # Materialize in the UI runs `__ASSET_JOB`: with this it runs in one process like crawl_groups
    # (Dagster's default starts a process, and loads the code, per step).
    executor=EXECUTOR,
)
