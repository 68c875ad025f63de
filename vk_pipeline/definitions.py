"""Assembles the code location: assets, jobs and the resources they run against.

With `VK_ACCESS_TOKENS` (several, comma- or newline-separated) or `VK_ACCESS_TOKEN` set, the VK
client talks to `VK_API_BASE_URL` (VK itself by default). The demo and `make dev` start the local
emulator and point the variables at it; the assets never know which one answers. Postgres comes
from `DATABASE_URL`, or the embedded server when it is unset; the tokens' rate budget lives there
too, shared by every run and process.
"""

import os
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
from vk_pipeline.automation import daily_refresh, group_file_sensor, group_lists
from vk_pipeline.budget import PostgresRateBudget
from vk_pipeline.partitions import group_partitions
from vk_pipeline.storage import PostgresIOManager, PostgresResource
from vk_pipeline.vk import VK_API_URL, VKResource

# The analysis assets ride along, so every crawl (sensor, daily refresh) leaves them current;
# selecting assets also selects their checks, so the checks run in the same run.
crawl_job = dg.define_asset_job(
    "crawl_groups",
    selection=dg.AssetSelection.assets(*vk_assets, *analysis_assets),
    partitions_def=group_partitions,
    # The steps run one after another anyway (each needs the previous one's rows); in the run's
    # own process they skip a process start-up (and a code load) per step.
    executor_def=dg.in_process_executor,
    description="Groups, posts and comments for the selected group partitions, their checks "
    "and the analysis tables.",
)

# No URL in config: the resource reads DATABASE_URL when it connects, so a password never lands in
# resource config that the UI displays.
postgres = PostgresResource()

defs = dg.Definitions(
    assets=[*vk_assets, group_lists, *analysis_assets],
    asset_checks=vk_checks,
    jobs=[crawl_job],
    sensors=[group_file_sensor],
    schedules=[daily_refresh],
    resources={
        "vk": VKResource(
            # Secrets stay in the environment: resolved at launch, never shown in the UI.
            access_token=dg.EnvVar(
                "VK_ACCESS_TOKENS" if os.environ.get("VK_ACCESS_TOKENS") else "VK_ACCESS_TOKEN"
            ),
            api_base_url=os.environ.get("VK_API_BASE_URL", VK_API_URL),
            budget=PostgresRateBudget(postgres=postgres),
        ),
        "postgres": postgres,
        "io_manager": PostgresIOManager(postgres=postgres),
    },
)
