"""The code location loads and validates; every asset says what it holds."""

import dagster as dg

from vk_pipeline.automation import daily_refresh, group_file_sensor
from vk_pipeline.budget.postgres import PostgresRateBudget
from vk_pipeline.definitions import defs
from vk_pipeline.jobs import crawl_job
from vk_pipeline.partitions import group_partitions


def test_definitions_validate():
    dg.Definitions.validate_loadable(defs)


VK_ASSETS = {"groups", "posts", "comments", "authors"}
ANALYSIS_ASSETS = {
    "post_stats",
    "group_activity_daily",
    "top_commenters",
    "hashtags_mentions_links",
}


def test_assets_are_partitioned_by_group_and_described():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys >= VK_ASSETS | ANALYSIS_ASSETS
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and "\n" not in node.description.strip(), key
    for name in VK_ASSETS | ANALYSIS_ASSETS:
        assert graph.get(dg.AssetKey(name)).partitions_def == group_partitions, name
    for name in VK_ASSETS:
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == "vk"
        assert node.pools == {"vk_api"}
    for name in ANALYSIS_ASSETS:
        # Computed in Postgres: no VK calls, so no place in the VK pool.
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == "analysis"
        assert node.pools == set()
        assert node.kinds == {"postgres", "sql"}
        assert dg.AssetKey("comments") in node.parent_keys
    assert graph.get(dg.AssetKey("comments")).parent_keys == {dg.AssetKey("posts")}
    assert graph.get(dg.AssetKey("posts")).parent_keys == {dg.AssetKey("groups")}
    growth = graph.get(dg.AssetKey("post_growth"))
    assert growth.partitions_def == group_partitions and growth.group_name == "analysis"
    assert growth.parent_keys == {dg.AssetKey("posts")}


def test_crawl_job_covers_the_assets_their_checks_and_the_analysis():
    job = defs.resolve_job_def(crawl_job.name)
    assert job.partitions_def == group_partitions
    selected = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert selected == VK_ASSETS | ANALYSIS_ASSETS | {"post_growth"}
    checked = {k.asset_key.to_user_string() for k in job.asset_layer.asset_graph.asset_check_keys}
    assert checked == VK_ASSETS - {"authors"}


def test_the_automation_launches_the_crawl_job_object():
    assert group_file_sensor.job is crawl_job
    assert daily_refresh.job is crawl_job


def test_the_code_location_runs_on_the_shared_budget():
    vk = defs.resources["vk"]
    assert isinstance(vk.budget, PostgresRateBudget)
    # The token is a secret resolved at launch, never a value in the UI's resource config.
    assert isinstance(vk.access_token, dg.EnvVar)
