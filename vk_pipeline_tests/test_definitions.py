"""The code location loads and validates; every asset says what it holds."""

import dagster as dg

from vk_pipeline.definitions import defs
from vk_pipeline.partitions import group_partitions


def test_definitions_validate():
    dg.Definitions.validate_loadable(defs)


def test_assets_are_partitioned_by_group_and_described():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"groups", "posts", "comments"}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.partitions_def == group_partitions
        assert node.group_name == "vk"
        assert node.description and "\n" not in node.description.strip()
        assert node.pools == {"vk_api"}
    assert graph.get(dg.AssetKey("comments")).parent_keys == {dg.AssetKey("posts")}
    assert graph.get(dg.AssetKey("posts")).parent_keys == {dg.AssetKey("groups")}


def test_crawl_job_covers_the_three_assets():
    job = defs.resolve_job_def("crawl_groups")
    assert job.partitions_def == group_partitions
