"""The analysis assets: one multi-asset step computing four tables in Postgres per group."""

import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import dagster as dg
from psycopg import sql
from pydantic import Field

from vk_pipeline.assets.analysis.build import (
    ANALYSIS_TABLES,
    GROUP_ACTIVITY_DAILY,
    HASHTAGS_MENTIONS_LINKS,
    POST_STATS,
    TOP_COMMENTERS,
    Builder,
    BuildOptions,
    GroupBuild,
)
from vk_pipeline.assets.common import (
    ANALYSIS_AUTOMATION,
    ANALYSIS_BACKFILL_POLICY,
    Progress,
    group_ids,
    markdown_table,
    partition_metadata,
    per_group_table,
)
from vk_pipeline.partition_metadata import add_run_totals, is_range, last_written_partition
from vk_pipeline.partitions import group_partitions
from vk_pipeline.storage import PostgresResource
from vk_pipeline.storage.catalog import table_info
from vk_pipeline.storage.io_manager import column_schema

ANALYSIS_GROUP = "analysis"
KINDS = {"postgres", "sql"}

DESCRIPTIONS = {
    POST_STATS: "Per post: likes, reposts, views, comments (top level, replies, deleted), "
    "engagement rate against the group's members, reply depth, community share, time to first "
    "comment.",
    GROUP_ACTIVITY_DAILY: "Per group and UTC day: posts, comments, replies, unique and new "
    "commenters, median comments per post.",
    TOP_COMMENTERS: "Per group: the most active commenters, all time and over the 30 days up to "
    "the newest comment, with first and last seen.",
    HASHTAGS_MENTIONS_LINKS: "Per group, UTC day and source (post or comment): hashtags, "
    "mentions and links with occurrences and the number of posts or comments holding them.",
}
DEPS = {
    POST_STATS: ["groups", "posts", "comments"],
    GROUP_ACTIVITY_DAILY: ["posts", "comments"],
    TOP_COMMENTERS: ["comments", "authors"],
    HASHTAGS_MENTIONS_LINKS: ["posts", "comments"],
}
# What the preview of each table shows first, and its columns.
PREVIEWS = {
    POST_STATS: (
        "ORDER BY engagement DESC NULLS LAST, post_id DESC",
        "group_id, post_id, date, likes, comments, replies, reply_depth, engagement_rate, "
        "minutes_to_first_comment",
    ),
    GROUP_ACTIVITY_DAILY: (
        "ORDER BY day DESC, group_id",
        "group_id, day, posts, comments, unique_commenters, new_commenters, "
        "median_comments_per_post",
    ),
    TOP_COMMENTERS: (
        "ORDER BY rank_all_time, group_id",
        "group_id, from_id, author_name, author_url, comments_all_time, comments_30d, "
        "rank_all_time, rank_30d, last_seen",
    ),
    HASHTAGS_MENTIONS_LINKS: (
        "ORDER BY occurrences DESC, day DESC, value",
        "group_id, day, source, kind, value, occurrences, items",
    ),
}


# Where a table's preview reads from, when not the table itself: commenters with their names.
PREVIEW_SOURCES = {TOP_COMMENTERS: "top_commenters_named"}


class AnalysisConfig(dg.Config):
    """How the analysis tables are brought up to date."""

    full_rebuild: bool = Field(
        default=False,
        description="Recompute every selected group from all its rows instead of only what "
        "changed since the last build.",
    )
    top_n: int = Field(
        default=100, ge=1, le=100_000, description="Commenters kept per group and measure."
    )
    rebuild_after_days: float = Field(
        default=7.0,
        ge=0,
        description="An incremental build becomes a full rebuild when the last full one is "
        "older: a safety net for rows changed outside the crawl.",
    )


# Changed groups built together, in one transaction: each statement runs once for all of them.
BUILD_BATCH = 50


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            name,
            description=DESCRIPTIONS[name],
            deps=DEPS[name],
            kinds=KINDS,
            group_name=ANALYSIS_GROUP,
            partitions_def=group_partitions,
            metadata={"table": name},
            automation_condition=ANALYSIS_AUTOMATION,
        )
        for name in ANALYSIS_TABLES
    ],
    name="analysis",
    partitions_def=group_partitions,
    backfill_policy=ANALYSIS_BACKFILL_POLICY,
    can_subset=True,
)
def analysis(
    context: dg.AssetExecutionContext, config: AnalysisConfig, postgres: PostgresResource
) -> Iterator[dg.MaterializeResult]:
    """Computes the selected analysis tables in Postgres for each group of the run."""
    selected = {k.to_user_string() for k in context.selected_asset_keys}
    options = BuildOptions(
        full_rebuild=config.full_rebuild,
        top_n=config.top_n,
        rebuild_after=timedelta(days=config.rebuild_after_days),
    )
    gids = group_ids(context)
    progress = Progress(context.log.info)
    started = time.monotonic()
    builds: list[GroupBuild] = []
    with postgres.connection() as conn:
        builder = Builder(conn, postgres.schema_name, options)
        quiet = builder.quiet_groups(gids, selected)
        conn.commit()
        unchanged = {gid for gid, group_changed in quiet.items() if not group_changed}
        for gid in unchanged:
            builds.append(GroupBuild.unchanged(gid, selected))
        rated = builder.update_rates([g for g, changed in quiet.items() if changed], selected)
        conn.commit()
        builds.extend(rated.values())
        todo = [gid for gid in gids if gid not in unchanged and gid not in rated]
        for start in range(0, len(todo), BUILD_BATCH):
            # A transaction per batch: a failure later in the run keeps earlier batches built.
            batch = todo[start : start + BUILD_BATCH]
            builds.extend(builder.build_groups(batch, selected))
            conn.commit()
            done = start + len(batch)
            progress.update(f"analysis: {done:,} / {len(todo):,} changed groups built")
    context.log.info(
        f"analysis: {len(todo):,} groups built, {len(rated):,} with new members only (rates"
        f" updated), {len(unchanged):,} unchanged"
    )
    position = {gid: i for i, gid in enumerate(gids)}
    builds.sort(key=lambda b: position[b.group_id])
    elapsed = time.monotonic() - started
    step = context.op_execution_context._step_execution_context
    last = last_written_partition(step) if is_range(step) else None
    for name in ANALYSIS_TABLES:
        if name in selected:
            with postgres.connection() as conn:
                schema = {
                    "dagster/column_schema": column_schema(
                        table_info(conn, name, postgres.schema_name)
                    )
                }
            totals = _metadata(postgres, name, gids, builds, elapsed)
            if last is None:
                yield dg.MaterializeResult(asset_key=name, metadata={**schema, **totals})
                continue
            # A range run's schema and totals go on its last partition's materialization only.
            partition_metadata(context, _group_metadata(postgres, name, gids), asset_key=name)
            add_run_totals(step, {**schema, **totals}, last, asset_key=name)
            yield dg.MaterializeResult(asset_key=name)


def _group_metadata(
    postgres: PostgresResource, table: str, gids: list[int]
) -> dict[int, dict[str, Any]]:
    """Each group's own row count and preview, for its own partition's materialization."""
    order, columns = PREVIEWS[table]
    ident = sql.Identifier(postgres.schema_name, table)
    counts = dict(
        postgres.execute(
            sql.SQL("SELECT group_id, count(*) FROM {} WHERE group_id = ANY(%s) GROUP BY 1").format(
                ident
            ),
            (gids,),
        )
    )
    names = [c.strip() for c in columns.split(",")]
    source = sql.Identifier(postgres.schema_name, PREVIEW_SOURCES.get(table, table))
    # The first rows of each group in the preview's order, in one query.
    rows = postgres.execute(
        sql.SQL(
            "SELECT * FROM (SELECT {cols}, row_number() OVER (PARTITION BY group_id {order}) AS n"
            " FROM {t} WHERE group_id = ANY(%s)) r WHERE n <= 5"
        ).format(cols=sql.SQL(columns), order=sql.SQL(order), t=source),
        (gids,),
    )
    previews: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows:
        previews.setdefault(int(row[0]), []).append(row[: len(names)])
    return {
        gid: {
            "dagster/row_count": int(counts.get(gid, 0)),
            "preview": dg.MetadataValue.md(
                markdown_table(names, previews[gid]) if gid in previews else "_empty_"
            ),
        }
        for gid in gids
    }


def _metadata(
    postgres: PostgresResource,
    table: str,
    gids: list[int],
    builds: list[GroupBuild],
    elapsed: float,
) -> dict[str, Any]:
    order, columns = PREVIEWS[table]
    ident = sql.Identifier(postgres.schema_name, table)
    source = sql.Identifier(postgres.schema_name, PREVIEW_SOURCES.get(table, table))
    total = postgres.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE group_id = ANY(%s)").format(ident), (gids,)
    )[0][0]
    rows = postgres.execute(
        sql.SQL("SELECT {} FROM {} WHERE group_id = ANY(%s) {} LIMIT 5").format(
            sql.SQL(columns), source, sql.SQL(order)
        ),
        (gids,),
    )
    modes = Counter(b.modes[table] for b in builds)
    return {
        "dagster/row_count": int(total),
        "rows_written": sum(b.rows_written[table] for b in builds),
        "modes": dg.MetadataValue.json(dict(modes)),
        "table_seconds": round(sum(b.seconds[table] for b in builds), 3),
        "run_seconds": round(elapsed, 2),
        "per_group": dg.MetadataValue.json(
            per_group_table(
                {
                    str(b.group_id): {
                        "mode": b.modes[table],
                        "rows_written": b.rows_written[table],
                        "seconds": b.seconds[table],
                    }
                    for b in builds
                }
            )
        ),
        "preview": dg.MetadataValue.md(
            markdown_table([c.strip() for c in columns.split(",")], rows) if rows else "_empty_"
        ),
    }
