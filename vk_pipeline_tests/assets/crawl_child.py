"""A crawl in a process of its own, for tests that kill it: `python -m
vk_pipeline_tests.assets.crawl_child DATABASE_URL VK_BASE_URL AS_OF KEY...`."""

from __future__ import annotations

import sys

import dagster as dg

from vk_pipeline.assets import vk_assets
from vk_pipeline.budget import PostgresRateBudget
from vk_pipeline.emulator import DEMO_TOKEN
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.storage import PostgresIOManager, PostgresResource
from vk_pipeline.vk import VKResource


def main(argv: list[str]) -> int:
    database_url, base_url, as_of, *keys = argv
    postgres = PostgresResource(database_url=database_url)
    resources = {
        "vk": VKResource(
            access_token=DEMO_TOKEN,
            api_base_url=base_url,
            budget=PostgresRateBudget(postgres=postgres),
        ),
        "postgres": postgres,
        "io_manager": PostgresIOManager(postgres=postgres),
    }
    config = {"as_of": as_of}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, keys)
        result = dg.materialize(
            vk_assets,
            instance=instance,
            resources=resources,
            run_config={"ops": {n: {"config": config} for n in ("posts", "comments")}},
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
        )
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
