"""`make demo`: the whole pipeline on embedded defaults, then an incremental refresh.

Registers a handful of groups as partitions, materializes groups → posts → comments for all of them
in one ranged Dagster run, prints what landed in Postgres, advances the emulator's world by a day
and refreshes, so the second table shows what an incremental run costs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import dagster as dg
import psycopg

from vk_pipeline import local
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"

STORED_SQL = """
SELECT g.id, coalesce(g.name, '') AS name, g.status,
  (SELECT count(*) FROM {s}.posts p WHERE p.group_id = g.id AND NOT p.is_deleted) AS posts,
  (SELECT count(*) FILTER (WHERE c.thread_root_id IS NULL AND NOT c.is_deleted)
     FROM {s}.comments c WHERE c.group_id = g.id) AS comments,
  (SELECT count(*) FILTER (WHERE c.thread_root_id IS NOT NULL AND NOT c.is_deleted)
     FROM {s}.comments c WHERE c.group_id = g.id) AS replies,
  (SELECT count(*) FROM {s}.comments c WHERE c.group_id = g.id AND c.is_deleted)
  + (SELECT count(*) FROM {s}.posts p WHERE p.group_id = g.id AND p.is_deleted) AS tombstones
FROM {s}.groups g WHERE g.id = ANY(%s) ORDER BY g.id
"""


def run_crawl(
    instance: dg.DagsterInstance, keys: list[str]
) -> tuple[dict[str, dict[str, float]], float]:
    """One ranged run over all keys; per group: its share of HTTP requests and of the run time."""
    from vk_pipeline.definitions import defs

    job = defs.resolve_job_def("crawl_groups")
    started = time.monotonic()
    result = job.execute_in_process(
        instance=instance,
        tags={RANGE_START: keys[0], RANGE_END: keys[-1]},
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    elapsed = time.monotonic() - started
    per_group: dict[str, dict[str, float]] = {k: {"requests": 0.0, "seconds": 0.0} for k in keys}
    # A range run records one materialization per partition, each with the run's metadata.
    seen: set[dg.AssetKey] = set()
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        if event.asset_key in seen or "per_group" not in meta:
            continue
        seen.add(event.asset_key)
        for gid, stats in meta["per_group"].value.items():
            per_group[gid]["requests"] += stats.get("requests", 0)
    total = sum(g["requests"] for g in per_group.values()) or 1
    for g in per_group.values():
        g["seconds"] = elapsed * g["requests"] / total
    return per_group, elapsed


def print_table(
    database_url: str, keys: list[str], per_group: dict[str, dict[str, float]]
) -> list[Any]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(STORED_SQL.format(s="vk"), ([int(k) for k in keys],)).fetchall()
    header = f"{'group':>8}  {'name':<28} {'status':<13} {'posts':>6} {'comments':>9} {'replies':>8} {'tombst.':>8} {'requests':>9} {'≈seconds':>8}"
    print(header)
    print("-" * len(header))
    for gid, name, status, n_posts, n_comments, n_replies, n_tombs in rows:
        g = per_group.get(str(gid), {})
        print(
            f"{gid:>8}  {name[:28]:<28} {status:<13} {n_posts:>6} {n_comments:>9} {n_replies:>8} "
            f"{n_tombs:>8} {g.get('requests', 0):>9.1f} {g.get('seconds', 0.0):>8.1f}"
        )
    return rows


def truth_matches(setup: local.LocalSetup, rows: list[Any]) -> bool:
    world = setup.world
    assert world is not None
    for gid, _name, _status, n_posts, n_comments, n_replies, _tombs in rows:
        posts = world.posts(gid)
        comments = [c for p in posts for c in world.comments(gid, p["id"]) if not c.get("deleted")]
        if n_posts != len(posts) or n_comments + n_replies != len(comments):
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--groups", help="comma-separated VK group ids (live VK only)")
    args = parser.parse_args(argv)
    setup = local.start()
    try:
        if setup.world is not None:
            keys = [str(g) for g in setup.world.group_ids()]
            print(f"VK emulator at {setup.emulator.base_url} (seeded world, 3 requests/s)")
        elif args.groups or os.environ.get("VK_DEMO_GROUPS"):
            keys = (args.groups or os.environ["VK_DEMO_GROUPS"]).split(",")
            print(f"live VK at {os.environ.get('VK_API_BASE_URL', 'api.vk.ru')}")
        else:
            print(
                "VK_ACCESS_TOKEN is set: name the groups with --groups or VK_DEMO_GROUPS",
                file=sys.stderr,
            )
            return 2
        where = (
            "DATABASE_URL"
            if "host=" not in setup.database_url
            else "embedded server in .local/pgdata"
        )
        print(f"Postgres: {where}; Dagster's runs and event logs in its database 'dagster'")
        if (drops := local.drop_dir()) is not None:
            print(f"drop folder (group-list files the sensor reads under `make dev`): {drops}")
        instance = dg.DagsterInstance.get()
        instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, keys)
        print(f"registered {len(keys)} groups as partitions of '{GROUP_PARTITIONS_NAME}'\n")

        print("== first load: groups, posts, comments in one ranged run ==")
        if setup.emulator is not None:
            setup.emulator.reset_stats()
        per_group, elapsed = run_crawl(instance, keys)
        rows = print_table(setup.database_url, keys, per_group)
        first_requests = round(sum(g["requests"] for g in per_group.values()))
        print(
            f"\nrun took {elapsed:.1f} s, {first_requests} HTTP requests for posts and comments "
            "(groups share execute requests; a group's column is its share, by API calls)"
        )
        if setup.emulator is not None and setup.world is not None:
            print(
                f"the emulator counted {setup.emulator.stats()['http_requests']} HTTP requests in all"
            )
            print(
                f"database equals the emulator's truth: {'yes' if truth_matches(setup, rows) else 'NO'}"
            )
            changes = setup.world.advance(days=1)
            print(
                f"\n== a day later: {changes.get('new_posts', 0)} new posts, "
                f"{changes.get('new_comments', 0)} new comments, "
                f"{changes.get('deleted_comments', 0)} deleted comments =="
            )
            setup.emulator.reset_stats()
            per_group, elapsed = run_crawl(instance, keys)
            rows = print_table(setup.database_url, keys, per_group)
            print(
                f"the emulator counted {setup.emulator.stats()['http_requests']} HTTP requests in all"
            )
            again = round(sum(g["requests"] for g in per_group.values()))
            print(
                f"\nrefresh took {elapsed:.1f} s, {again} HTTP requests (first load: {first_requests})"
            )
            print(
                f"database equals the emulator's truth: {'yes' if truth_matches(setup, rows) else 'NO'}"
            )
        print(
            "\nOpen the Dagster UI on the same data with `make dev` (http://127.0.0.1:3000), "
            "then Assets → vk → Materialize on any group partition."
        )
        return 0
    finally:
        setup.close()


if __name__ == "__main__":
    sys.exit(main())
