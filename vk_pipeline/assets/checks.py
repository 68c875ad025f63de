"""Data-quality checks on groups, posts and comments, evaluated per group partition.

Each asset has one multi-asset check step that runs a few set-based queries over the run's
groups and reports every check for every group as its own partition's result, so the UI shows
them per partition. Dagster 1.13 records a check result for one partition only when a step
runs a single partition; the crawl runs ranges of up to 50 groups, so the steps yield one
``AssetCheckEvaluation`` per partition themselves (partitioned check specs are a preview API
in 1.13; ``AssetCheckResult`` would record one unpartitioned result for a range).

Severity: ERROR where the data contradicts itself (a comment without its post, a live comment
under a deleted post, a post dated after it was first seen, a partition without a group row);
WARN where VK and the store disagree and a crawl race or a config explains it (comment counts,
the pinned post, a readable group without posts).
"""

import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from psycopg import sql

from vk_pipeline.assets.common import group_ids
from vk_pipeline.instance_storage import run_materializations
from vk_pipeline.partitions import group_partitions
from vk_pipeline.storage import PostgresResource

ERROR = dg.AssetCheckSeverity.ERROR
WARN = dg.AssetCheckSeverity.WARN
GROUP_STATUSES = ("open", "closed", "private", "banned", "deleted", "wall_disabled", "not_found")
SAMPLE = 20  # rows named per failed check and group


@dataclass(frozen=True)
class Check:
    asset: str
    name: str
    severity: dg.AssetCheckSeverity
    description: str


CHECKS = (
    Check("groups", "group_row_present", ERROR,
          "Every group partition has a groups row with a known status."),
    Check("posts", "readable_group_has_posts", WARN,
          "An open group whose wall VK shows a pinned post on has posts stored (VK reports no "
          "wall size, so an open wall without a pinned post may be empty)."),
    Check("posts", "no_post_after_crawl", ERROR,
          "No post is dated more than an hour after it was first stored."),
    Check("posts", "pinned_post_stored", WARN,
          "The post VK reports pinned (groups.raw->fixed_post) is stored (start_date may skip "
          "an old one); fixed_post 0 or absent means no pinned post."),
    Check("comments", "comment_counts_match_vk", WARN,
          "Per live post with readable comments, VK's comments.count lies between the stored "
          "live comments (replies included) and those plus every stored deleted one: VK does "
          "not document which deleted comments it counts, so any faithful VK stays inside."),
    Check("comments", "comments_have_posts", ERROR,
          "Every comment belongs to a stored post of its own group."),
    Check("comments", "no_live_comments_under_deleted_posts", ERROR,
          "A deleted post has no comment still marked live."),
)  # fmt: skip


@dataclass
class Outcome:
    """One check's result for one group."""

    passed: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str | None = None


Outcomes = dict[str, dict[int, Outcome]]  # check name → group → outcome


# --------------------------------------------------------------------------------------------
# Queries (each over all groups of the run at once; results split per group in Python)


def _q(postgres: PostgresResource, text: str, gids: list[int]) -> list[tuple[Any, ...]]:
    query = sql.SQL(text).format(s=sql.Identifier(postgres.schema_name))
    return postgres.execute(query, {"gids": gids})


def groups_outcomes(postgres: PostgresResource, gids: list[int]) -> Outcomes:
    rows = _q(
        postgres,
        "SELECT k.gid, g.id IS NOT NULL, g.status, g.fetch_error_code, g.fetch_error"
        " FROM unnest(%(gids)s::bigint[]) k(gid) LEFT JOIN {s}.groups g ON g.id = k.gid",
        gids,
    )
    out: dict[int, Outcome] = {}
    for gid, exists, status, code, error in rows:
        meta = {"status": status, "fetch_error_code": code, "fetch_error": error}
        if not exists:
            out[gid] = Outcome(False, meta, f"no groups row for group {gid}")
        elif status not in GROUP_STATUSES:
            out[gid] = Outcome(False, meta, f"group {gid} has unknown status {status!r}")
        else:
            out[gid] = Outcome(True, meta)
    return {"group_row_present": out}


POSTS_SQL = """
    SELECT g.id, g.status, nullif((g.raw ->> 'fixed_post')::bigint, 0) AS fixed_post,
           count(p.id) FILTER (WHERE NOT p.is_deleted) AS live_posts,
           count(p.id) FILTER (WHERE p.is_deleted) AS deleted_posts,
           bool_or(p.id = nullif((g.raw ->> 'fixed_post')::bigint, 0)) AS pinned_stored,
           max(p.date) AS newest
    FROM {s}.groups g LEFT JOIN {s}.posts p ON p.group_id = g.id
    WHERE g.id = ANY(%(gids)s)
    GROUP BY g.id
"""
FUTURE_POSTS_SQL = """
    SELECT p.group_id, p.id, p.date, p.first_seen_at
    FROM {s}.posts p
    WHERE p.group_id = ANY(%(gids)s) AND p.date > p.first_seen_at + interval '1 hour'
    ORDER BY p.group_id, p.date DESC
"""


def posts_outcomes(postgres: PostgresResource, gids: list[int]) -> Outcomes:
    readable: dict[int, Outcome] = {}
    pinned: dict[int, Outcome] = {}
    future: dict[int, Outcome] = {gid: Outcome(True, {"posts_after_crawl": 0}) for gid in gids}
    for gid, status, fixed, live, deleted, pinned_stored, newest in _q(postgres, POSTS_SQL, gids):
        meta = {
            "status": status,
            "live_posts": int(live),
            "deleted_posts": int(deleted),
            "fixed_post": fixed,
            "newest_post": newest.isoformat() if newest else None,
        }
        if status == "open" and fixed is not None and live == 0:
            readable[gid] = Outcome(
                False,
                meta,
                f"group {gid} is open and VK pins post {fixed} on its wall, "
                "but no live post is stored",
            )
        else:
            readable[gid] = Outcome(True, meta)
        if fixed is None:
            pinned[gid] = Outcome(True, {"fixed_post": None})
        elif pinned_stored:
            pinned[gid] = Outcome(True, {"fixed_post": fixed, "url": _post_url(gid, fixed)})
        else:
            pinned[gid] = Outcome(
                False,
                {"fixed_post": fixed, "url": _post_url(gid, fixed)},
                f"pinned post {_post_url(gid, fixed)} is not stored",
            )
    by_group: dict[int, list[tuple[Any, ...]]] = {}
    for row in _q(postgres, FUTURE_POSTS_SQL, gids):
        by_group.setdefault(row[0], []).append(row)
    for gid, rows in by_group.items():
        future[gid] = Outcome(
            False,
            {
                "posts_after_crawl": len(rows),
                "posts": dg.MetadataValue.json(
                    [
                        {
                            "url": _post_url(gid, pid),
                            "date": d.isoformat(),
                            "first_seen_at": f.isoformat(),
                        }
                        for _, pid, d, f in rows[:SAMPLE]
                    ]
                ),
            },
            f"{len(rows)} post(s) dated after they were first stored, e.g. "
            f"{_post_url(gid, rows[0][1])}",
        )
    missing = [g for g in gids if g not in readable]
    for gid in missing:  # no groups row: the groups check fails; nothing to say about posts
        readable[gid] = Outcome(True, {"status": None})
        pinned[gid] = Outcome(True, {"fixed_post": None})
    return {
        "readable_group_has_posts": readable,
        "no_post_after_crawl": future,
        "pinned_post_stored": pinned,
    }


# One pass over the run's comments, grouped by post; only posts with a finding come back.
COMMENTS_SQL = """
    WITH per_post AS (
        SELECT c.group_id, c.owner_id, c.post_id,
               count(*) FILTER (WHERE NOT c.is_deleted) AS live,
               count(*) FILTER (WHERE c.is_deleted) AS deleted,
               count(*) FILTER (WHERE c.owner_id <> -c.group_id) AS misplaced
        FROM {s}.comments c
        WHERE c.group_id = ANY(%(gids)s)
        GROUP BY c.group_id, c.owner_id, c.post_id
    ),
    checked AS (
        SELECT count(*) AS posts, p.group_id FROM {s}.posts p
        WHERE p.group_id = ANY(%(gids)s) AND NOT p.is_deleted
          AND p.comments_status IS DISTINCT FROM 'closed'
        GROUP BY p.group_id
    )
    SELECT pp.group_id, pp.owner_id, pp.post_id, pp.live, pp.deleted, pp.misplaced,
           p.id IS NOT NULL, p.group_id, p.is_deleted, p.comments_count,
           p.comments_synced_count, p.comments_status
    FROM per_post pp
    LEFT JOIN {s}.posts p ON p.owner_id = pp.owner_id AND p.id = pp.post_id
    WHERE p.id IS NULL OR pp.misplaced > 0 OR p.group_id <> pp.group_id
       OR (p.is_deleted AND pp.live > 0)
       OR (NOT p.is_deleted AND p.comments_status IS DISTINCT FROM 'closed'
           AND coalesce(p.comments_count, 0) NOT BETWEEN pp.live AND pp.live + pp.deleted)
    UNION ALL
    SELECT p.group_id, p.owner_id, p.id, 0, 0, 0, true, p.group_id, p.is_deleted,
           p.comments_count, p.comments_synced_count, p.comments_status
    FROM {s}.posts p
    WHERE p.group_id = ANY(%(gids)s) AND NOT p.is_deleted
      AND p.comments_status IS DISTINCT FROM 'closed' AND coalesce(p.comments_count, 0) > 0
      AND NOT EXISTS (SELECT 1 FROM {s}.comments c
                      WHERE c.owner_id = p.owner_id AND c.post_id = p.id)
    UNION ALL
    SELECT group_id, NULL, NULL, posts, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'checked'
    FROM checked
"""
SAMPLE_COMMENTS_SQL = """
    SELECT c.owner_id, c.post_id, (array_agg(c.id ORDER BY c.id))[1:5]
    FROM {s}.comments c
    WHERE (c.owner_id, c.post_id) IN (SELECT * FROM unnest(%(owners)s::bigint[], %(posts)s::bigint[]))
      AND (NOT c.is_deleted OR %(all)s)
    GROUP BY c.owner_id, c.post_id
"""


def comments_outcomes(postgres: PostgresResource, gids: list[int]) -> Outcomes:
    mismatch: dict[int, list[dict[str, Any]]] = {g: [] for g in gids}
    orphans: dict[int, list[dict[str, Any]]] = {g: [] for g in gids}
    under_deleted: dict[int, list[dict[str, Any]]] = {g: [] for g in gids}
    checked: dict[int, int] = {}
    for row in _q(postgres, COMMENTS_SQL, gids):
        gid, owner, pid, live, deleted, misplaced, exists, post_gid, p_deleted = row[:9]
        vk_count, synced, status = row[9:]
        if status == "checked" and owner is None:
            checked[gid] = int(live)
            continue
        item = {
            "url": _post_url(-owner, pid),
            "post_id": pid,
            "owner_id": owner,
            "stored_live": int(live),
            "stored_deleted": int(deleted),
        }
        if not exists or misplaced or post_gid != gid:
            orphans[gid].append(
                {**item, "post_stored": bool(exists), "comment_group_id": gid,
                 "post_group_id": post_gid}
            )  # fmt: skip
            continue
        if p_deleted:
            under_deleted[gid].append(item)
            continue
        low, high = int(live), int(live) + int(deleted)
        vk = vk_count or 0
        mismatch[gid].append(
            {
                **item,
                "allowed": [low, high],
                "outside_by": vk - high if vk > high else vk - low,
                "vk_count": vk_count,
                "synced_count": synced,
                "comments_status": status,
            }
        )
    _add_samples(postgres, orphans, live_only=False)
    _add_samples(postgres, under_deleted, live_only=True)
    out: Outcomes = {
        "comment_counts_match_vk": {},
        "comments_have_posts": {},
        "no_live_comments_under_deleted_posts": {},
    }
    for gid in gids:
        posts = sorted(mismatch[gid], key=lambda m: -abs(m["outside_by"]))
        diff = sum(m["outside_by"] for m in posts)
        out["comment_counts_match_vk"][gid] = Outcome(
            not posts,
            {
                "posts_checked": checked.get(gid, 0),
                "posts_differing": len(posts),
                "vk_minus_stored": diff,
                "posts": dg.MetadataValue.json(posts[:SAMPLE]),
            },
            None
            if not posts
            else f"{len(posts)} post(s) whose VK comment count is outside what the stored comments "
            f"allow (live ≤ count ≤ live + deleted), e.g. {posts[0]['url']}: VK "
            f"{posts[0]['vk_count']}, stored {posts[0]['stored_live']} live + "
            f"{posts[0]['stored_deleted']} deleted",
        )
        found = orphans[gid]
        out["comments_have_posts"][gid] = Outcome(
            not found,
            {"posts_missing": len(found), "posts": dg.MetadataValue.json(found[:SAMPLE])},
            None
            if not found
            else f"comments of {len(found)} post(s) have no stored post of their group, e.g. "
            f"{found[0]['url']} (comments {found[0].get('comment_ids')})",
        )
        found = under_deleted[gid]
        out["no_live_comments_under_deleted_posts"][gid] = Outcome(
            not found,
            {
                "deleted_posts_with_live_comments": len(found),
                "live_comments": sum(f["stored_live"] for f in found),
                "posts": dg.MetadataValue.json(found[:SAMPLE]),
            },
            None
            if not found
            else f"{sum(f['stored_live'] for f in found)} live comment(s) under "
            f"{len(found)} deleted post(s), e.g. {found[0]['url']} "
            f"(comments {found[0].get('comment_ids')})",
        )
    return out


def _add_samples(
    postgres: PostgresResource, found: Mapping[int, list[dict[str, Any]]], *, live_only: bool
) -> None:
    items = [i for rows in found.values() for i in rows[:SAMPLE]]
    if not items:
        return
    rows = postgres.execute(
        sql.SQL(SAMPLE_COMMENTS_SQL).format(s=sql.Identifier(postgres.schema_name)),
        {
            "owners": [i["owner_id"] for i in items],
            "posts": [i["post_id"] for i in items],
            "all": not live_only,
        },
    )
    ids = {(o, p): list(c) for o, p, c in rows}
    for item in items:
        item["comment_ids"] = ids.get((item["owner_id"], item["post_id"]), [])


def _post_url(gid: int, pid: int) -> str:
    return f"https://vk.com/wall-{gid}_{pid}"


# --------------------------------------------------------------------------------------------
# Dagster


def _targets(
    context: dg.AssetCheckExecutionContext, key: dg.AssetKey
) -> dict[str, AssetCheckEvaluationTargetMaterializationData | None]:
    """The materialization each partition's evaluation is about: the one this run just recorded
    (one query for the run's events, not one per partition); else the partition's latest."""
    op_context = context.op_execution_context
    instance = op_context.instance
    partitions = list(op_context.partition_keys)
    run_id = op_context.run_id
    targets: dict[str, AssetCheckEvaluationTargetMaterializationData | None] = {
        partition: AssetCheckEvaluationTargetMaterializationData(
            storage_id=storage_id, run_id=run_id, timestamp=timestamp
        )
        for partition, (storage_id, timestamp) in run_materializations(
            instance, run_id, key
        ).items()
    }
    for partition in partitions:
        if partition in targets:
            continue
        # A check run on its own (the UI's "Execute checks"): the latest materialization.
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
        ).records
        targets[partition] = _target(records[0]) if records else None
    return targets


def _target(record: dg.EventLogRecord) -> AssetCheckEvaluationTargetMaterializationData:
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id,
        run_id=record.event_log_entry.run_id,
        timestamp=record.timestamp,
    )


def _evaluations(
    context: dg.AssetCheckExecutionContext, asset: str, outcomes: Outcomes
) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    key = dg.AssetKey(asset)
    targets = _targets(context, key)
    selected = {k.name for k in context.selected_asset_check_keys}
    for check in CHECKS:
        if check.asset != asset or check.name not in selected:
            continue
        failed = 0
        for gid, outcome in sorted(outcomes[check.name].items()):
            failed += not outcome.passed
            yield dg.AssetCheckEvaluation(
                asset_key=key,
                check_name=check.name,
                passed=outcome.passed,
                metadata=outcome.metadata,
                severity=check.severity,
                description=outcome.description,
                target_materialization_data=targets.get(str(gid)),
                blocking=False,
                partition=str(gid),
            )
        if failed:
            context.log.warning(f"{asset}.{check.name}: failed for {failed} group(s)")
        yield dg.Output(None, output_name=f"{key.to_python_identifier()}_{check.name}")


def _specs(asset: str) -> list[dg.AssetCheckSpec]:
    with warnings.catch_warnings():
        # Partitioned check specs are a preview API in Dagster 1.13 (module docstring).
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(
                c.name,
                asset=c.asset,
                description=c.description,
                partitions_def=group_partitions,
                metadata={"severity": c.severity.value},
            )
            for c in CHECKS
            if c.asset == asset
        ]


@dg.multi_asset_check(specs=_specs("groups"), name="groups_checks", can_subset=True)
def groups_checks(
    context: dg.AssetCheckExecutionContext, postgres: PostgresResource
) -> Iterable[dg.AssetCheckEvaluation | dg.Output]:
    """Every group partition has a groups row with a known status."""
    yield from _evaluations(context, "groups", groups_outcomes(postgres, _gids(context)))


@dg.multi_asset_check(specs=_specs("posts"), name="posts_checks", can_subset=True)
def posts_checks(
    context: dg.AssetCheckExecutionContext, postgres: PostgresResource
) -> Iterable[dg.AssetCheckEvaluation | dg.Output]:
    """Posts of readable groups are stored, none is dated after the crawl, the pinned one is there."""
    yield from _evaluations(context, "posts", posts_outcomes(postgres, _gids(context)))


@dg.multi_asset_check(specs=_specs("comments"), name="comments_checks", can_subset=True)
def comments_checks(
    context: dg.AssetCheckExecutionContext, postgres: PostgresResource
) -> Iterable[dg.AssetCheckEvaluation | dg.Output]:
    """Comment counts match VK's, no comment lacks its post, none is live under a deleted post."""
    yield from _evaluations(context, "comments", comments_outcomes(postgres, _gids(context)))


def _gids(context: dg.AssetCheckExecutionContext) -> list[int]:
    return group_ids(context.op_execution_context)


vk_checks = [groups_checks, posts_checks, comments_checks]
