"""Assembles the code location: resources for now; the assets arrive with the storage layer."""

import os

import dagster as dg

from vk_pipeline.vk import VK_API_URL, VKResource

defs = dg.Definitions(
    resources={
        "vk": VKResource(
            access_token=dg.EnvVar("VK_ACCESS_TOKEN"),
            api_base_url=os.environ.get("VK_API_BASE_URL", VK_API_URL),
        ),
    },
)
