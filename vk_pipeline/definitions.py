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
    daily_refresh,
    group_file_sensor,
    group_lists,
    invalid_partition_keys,
)
from vk_pipeline.jobs import crawl_job
from vk_pipeline.resources import build_resources

defs = dg.Definitions(
    assets=[*vk_assets, group_lists, *analysis_assets],
    asset_checks=vk_checks,
    jobs=[crawl_job],
    sensors=[group_file_sensor, invalid_partition_keys],
    schedules=[daily_refresh],
    resources=build_resources(),
)
