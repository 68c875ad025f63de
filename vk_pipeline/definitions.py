"""Assembles the code location: assets, jobs and the resources they run against.

With `VK_ACCESS_TOKENS` (several, comma- or newline-separated) or `VK_ACCESS_TOKEN` set, the VK
client talks to `VK_API_BASE_URL` (VK itself by default). The demo and `make dev` start the local
emulator and point the variables at it; the assets never know which one answers. Postgres comes
from `DATABASE_URL`, or the embedded server when it is unset; the tokens' rate budget lives there
too, shared by every run and process.
"""

import os

import dagster as dg

from vk_pipeline.assets import vk_assets
from vk_pipeline.budget import PostgresRateBudget
from vk_pipeline.partitions import group_partitions
from vk_pipeline.storage import PostgresIOManager, PostgresResource
from vk_pipeline.vk import VK_API_URL, VKResource

crawl_job = dg.define_asset_job(
    "crawl_groups",
    selection=dg.AssetSelection.assets(*vk_assets),
    partitions_def=group_partitions,
    description="Groups, posts and comments for the selected group partitions.",
)

# No URL in config: the resource reads DATABASE_URL when it connects, so a password never lands in
# resource config that the UI displays.
postgres = PostgresResource()

defs = dg.Definitions(
    assets=vk_assets,
    jobs=[crawl_job],
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
