"""The `post_growth` asset: per-post growth curves at fixed ages and each group's median curve.

Counters are snapshotted only when they change (storage/history.py), so a curve point is the
linear interpolation between the last snapshot at or before that age and the first one at or
after it; with no snapshot on one side there is no point. Nothing is extrapolated.
"""

import dagster as dg
from psycopg import sql

from vk_pipeline.assets.analysis.assets import ANALYSIS_GROUP, KINDS
from vk_pipeline.assets.common import (
    ANALYSIS_AUTOMATION,
    ANALYSIS_BACKFILL_POLICY,
    group_ids,
    partition_metadata,
)
from vk_pipeline.partitions import group_partitions
from vk_pipeline.storage import PostgresResource

AGES_HOURS = (1, 6, 24, 72, 168)
COUNTERS = ("views", "likes", "reposts", "comments")

# {s} is the schema; %(g)s the groups, %(ages)s the ages in hours.
CURVES_SQL = """
DELETE FROM {s}.post_growth WHERE group_id = ANY(%(g)s);
DELETE FROM {s}.group_growth WHERE group_id = ANY(%(g)s);
INSERT INTO {s}.post_growth (owner_id, post_id, group_id, age_hours, {cols})
SELECT p.owner_id, p.id, p.group_id, a.age, {interp}
FROM {s}.posts p
CROSS JOIN unnest(%(ages)s::integer[]) AS a(age)
CROSS JOIN LATERAL (
    SELECT extract(epoch FROM c.observed_at - p.date) / 3600 AS h, {ccols}
    FROM {s}.post_counters c
    WHERE c.owner_id = p.owner_id AND c.post_id = p.id
      AND c.observed_at <= p.date + make_interval(hours => a.age)
    ORDER BY c.observed_at DESC LIMIT 1
) b
CROSS JOIN LATERAL (
    SELECT extract(epoch FROM c.observed_at - p.date) / 3600 AS h, {ccols}
    FROM {s}.post_counters c
    WHERE c.owner_id = p.owner_id AND c.post_id = p.id
      AND c.observed_at >= p.date + make_interval(hours => a.age)
    ORDER BY c.observed_at LIMIT 1
) n
WHERE p.group_id = ANY(%(g)s) AND NOT p.is_deleted;
INSERT INTO {s}.group_growth (group_id, age_hours, posts, {cols})
SELECT group_id, age_hours, count(*), {medians}
FROM {s}.post_growth WHERE group_id = ANY(%(g)s)
GROUP BY group_id, age_hours;
"""


def _curves_sql(schema: str) -> list[sql.Composable]:
    def interp(c: str) -> str:
        return (
            f"CASE WHEN n.h = b.h THEN b.{c}::float8 "
            f"ELSE b.{c} + (n.{c} - b.{c}) * (a.age - b.h) / (n.h - b.h) END"
        )

    text = CURVES_SQL.format(
        s="{s}",
        cols=", ".join(COUNTERS),
        ccols=", ".join(f"c.{c}" for c in COUNTERS),
        interp=", ".join(interp(c) for c in COUNTERS),
        medians=", ".join(
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {c}) FILTER (WHERE {c} IS NOT NULL)"
            for c in COUNTERS
        ),
    )
    return [
        sql.SQL(part).format(s=sql.Identifier(schema)) for part in text.split(";") if part.strip()
    ]


def _age(hours: int) -> str:
    return f"{hours // 24} d" if hours >= 24 and hours % 24 == 0 else f"{hours} h"


def curve_markdown(rows: list[tuple], counter: str = "views") -> str:
    """A group's median curve as a table with a bar per age: Dagster renders markdown."""
    if not rows:
        return "_no snapshots yet_"
    top = max((r[2] or 0 for r in rows), default=0) or 1
    lines = [f"| group | age | posts | median {counter} | |", "|---|---|---|---|---|"]
    for gid, age, value, posts in rows:
        bar = "█" * round(20 * (value or 0) / top)
        shown = "–" if value is None else f"{value:,.0f}"
        lines.append(f"| {gid} | {_age(age)} | {posts} | {shown} | {bar} |")
    return "\n".join(lines)


@dg.asset(
    deps=["posts"],
    kinds=KINDS,
    group_name=ANALYSIS_GROUP,
    partitions_def=group_partitions,
    backfill_policy=ANALYSIS_BACKFILL_POLICY,
    automation_condition=ANALYSIS_AUTOMATION,
)
def post_growth(
    context: dg.AssetExecutionContext, postgres: PostgresResource
) -> dg.MaterializeResult:
    """Per post: views, likes, reposts, comments 1 h, 6 h, 24 h, 3 d, 7 d after publication, between real snapshots only; per group: their median."""
    gids = group_ids(context)
    schema = postgres.schema_name
    with postgres.connection() as conn, conn.transaction():
        # One transaction: a group's curves are replaced whole or not at all.
        for statement in _curves_sql(schema):
            conn.execute(statement, {"g": gids, "ages": list(AGES_HOURS)})
    rows = postgres.execute(
        sql.SQL(
            "SELECT group_id, age_hours, views, posts FROM {} WHERE group_id = ANY(%s)"
            " ORDER BY group_id, age_hours LIMIT 50"
        ).format(sql.Identifier(schema, "group_growth")),
        (gids,),
    )
    points = postgres.execute(
        sql.SQL("SELECT count(*), count(views) FROM {} WHERE group_id = ANY(%s)").format(
            sql.Identifier(schema, "post_growth")
        ),
        (gids,),
    )[0]
    per_group = dict(
        postgres.execute(
            sql.SQL("SELECT group_id, count(*) FROM {} WHERE group_id = ANY(%s) GROUP BY 1").format(
                sql.Identifier(schema, "post_growth")
            ),
            (gids,),
        )
    )
    # Each partition its own count (and a key that is not a group id says it was skipped).
    partition_metadata(
        context, {gid: {"dagster/row_count": int(per_group.get(gid, 0))} for gid in gids}
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": int(points[0]),
            "points_with_views": int(points[1]),
            "median_curve": dg.MetadataValue.md(curve_markdown(rows)),
        }
    )
