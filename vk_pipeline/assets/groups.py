import time

import dagster as dg
import pandas as pd

from vk_pipeline.assets.common import (
    VK_ASSET,
    failing_fast,
    group_ids,
    markdown_table,
    partition_metadata,
    run_metadata,
)
from vk_pipeline.assets.rows import GROUP_COLUMNS, frame, group_row
from vk_pipeline.partition_metadata import add_run_totals
from vk_pipeline.vk import VKResource, fetch_groups


@dg.asset(
    **VK_ASSET,
    metadata={"partition_expr": "id", "write_mode": "upsert"},
)
def groups(context: dg.AssetExecutionContext, vk: VKResource) -> pd.DataFrame:
    """VK communities, one row each: name, type, members, wall mode, status (open/closed/private/banned/deleted)."""
    started = time.monotonic()
    keys = [str(gid) for gid in group_ids(context)]
    client = vk.get_client(warn=context.log.warning)
    with failing_fast(), client:
        results = fetch_groups(client, keys)
    rows = [
        group_row(r.key, r.group, (r.error.code, r.error.message) if r.error else None)
        for r in results
    ]
    df = frame(rows, GROUP_COLUMNS)
    statuses = df["status"].value_counts().to_dict()
    context.log.info(f"{len(df)} groups: {statuses}")
    step = context.op_execution_context._step_execution_context
    add_run_totals(step, run_metadata(client.stats, started, statuses=statuses))
    shown = ["id", "screen_name", "name", "status", "members_count"]
    # One row per group: each partition's preview is its own row, not a filter of the frame
    # per group (500 × 500 comparisons in a 500-group run).
    partition_metadata(
        context,
        {
            int(row_id): {
                "status": status,
                "preview": dg.MetadataValue.md(markdown_table(shown, [row])),
            }
            for row_id, status, row in zip(
                df["id"], df["status"], df[shown].itertuples(index=False, name=None), strict=True
            )
        },
    )
    return df
