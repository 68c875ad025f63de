"""`analysis_automation`: the daemon's sensor that keeps the analysis tables behind every crawl.

`crawl_groups` (the schedule's and the drop sensor's runs) builds the analysis tables of its
groups itself. A crawl launched without them (Materialize of posts in the UI, say) leaves them
behind; the analysis assets carry an automation condition (eager: rebuild a group's tables once
its groups, posts or comments were materialized and no crawl of it is under way), and this sensor
evaluates it. Dagster creates such a sensor stopped unless told otherwise; this one runs by
default, so `make dev` and the compose stack need no switch in the UI. Its requests become
backfills, so the analysis runs in ranges of up to 500 groups (`ANALYSIS_BACKFILL_POLICY`).
"""

from __future__ import annotations

import dagster as dg

from vk_pipeline.assets.analysis import analysis_assets

SENSOR_NAME = "analysis_automation"

analysis_automation = dg.AutomationConditionSensorDefinition(
    SENSOR_NAME,
    target=dg.AssetSelection.assets(*analysis_assets),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Rebuilds the analysis tables of the groups a crawl has just materialized.",
)
