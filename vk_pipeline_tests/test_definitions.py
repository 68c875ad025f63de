"""The code location loads and validates; every asset says what it holds."""

import dagster as dg

from vk_pipeline.automation import analysis_automation, daily_refresh, group_file_sensor
from vk_pipeline.budget.postgres import PostgresRateBudget
from vk_pipeline.definitions import defs
from vk_pipeline.jobs import MAX_RUNTIME_TAG, crawl_job
from vk_pipeline.partitions import group_partitions


def test_definitions_validate():
    dg.Definitions.validate_loadable(defs)


VK_ASSETS = {"groups", "posts", "comments", "authors"}
ANALYSIS_ASSETS = {
    "post_stats",
    "group_activity_daily",
    "top_commenters",
    "hashtags_mentions_links",
    "post_growth",
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
        if name != "post_growth":  # growth reads post snapshots only (below)
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
    assert selected == VK_ASSETS | set(ANALYSIS_ASSETS)
    checked = {k.asset_key.to_user_string() for k in job.asset_layer.asset_graph.asset_check_keys}
    assert checked == VK_ASSETS - {"authors"}
    # A hung crawl run is failed (and retried) by run monitoring before the instance's backstop.
    assert 0 < int(job.tags[MAX_RUNTIME_TAG]) < 43200
    # The analysis tables also follow a crawl launched without them (Materialize in the UI)
    # through their automation condition, evaluated by a sensor that runs without being switched
    # on in the UI.
    graph = defs.resolve_asset_graph()
    for name in ANALYSIS_ASSETS:
        assert graph.get(dg.AssetKey(name)).automation_condition is not None
    sensor = defs.resolve_sensor_def(analysis_automation.name)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert set(sensor.asset_selection.resolve(graph)) == {dg.AssetKey(n) for n in ANALYSIS_ASSETS}


def test_materialize_in_the_ui_runs_like_the_crawl_job():
    """The UI's Materialize runs `__ASSET_JOB`: the same in-process executor as crawl_groups."""
    implicit = defs.resolve_implicit_global_asset_job_def()
    assert implicit.executor_def is defs.resolve_job_def(crawl_job.name).executor_def
    assert implicit.executor_def.name == "in_process"


def test_assets_link_to_their_source():
    graph = defs.resolve_asset_graph()
    for name in VK_ASSETS | ANALYSIS_ASSETS:
        refs = graph.get(dg.AssetKey(name)).metadata["dagster/code_references"]
        assert any(r.file_path.endswith(".py") for r in refs.code_references), name


def test_the_automation_launches_the_crawl_job_object():
    assert group_file_sensor.job is crawl_job
    assert daily_refresh.job is crawl_job


def test_the_code_location_runs_on_the_shared_budget():
    vk = defs.resources["vk"]
    assert isinstance(vk.budget, PostgresRateBudget)
    # The token is a secret resolved at launch, never a value in the UI's resource config.
    assert isinstance(vk.access_token, dg.EnvVar)
