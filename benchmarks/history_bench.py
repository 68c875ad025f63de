"""History figures (issue 18): revisions against the emulator's change log, growth curves,
snapshot and revision rows per day, and authors for 100,000 new commenters.

1. The demo world (vk_pipeline/local.py DEMO_WORLD) crawled once, then a week of changes in
   steps of `--step-hours`: edits, deletions (stubs and vanishing comments, deleted posts),
   restores, new posts and comments, growing counters and audiences. Every step is crawled with
   the whole history re-read (lookback 3650 days), so every change between two crawls is
   visible; stored revisions are compared with the emulator's change log folded per step
   (vk_pipeline/testing/history.py). One comment's history is printed.
2. `post_growth` materialized: one post's curve and its group's median curve.
3. Rows and MB per day of revisions and snapshots, projected to 1,000 groups for a year.
4. `authors` materialized for a group with 100,000 distinct commenters nobody fetched yet
   (HTTP requests, time), then again after 10,000 of them went stale.

    .venv/bin/python benchmarks/history_bench.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import Counter
from typing import Any

import dagster as dg
import pandas as pd
import psycopg

from vk_pipeline.assets.analysis import post_growth
from vk_pipeline.assets.authors import authors
from vk_pipeline.emulator import DEMO_TOKEN, EmulatorServer, World
from vk_pipeline.local import DEMO_WORLD
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.resources import build_resources
from vk_pipeline.storage import PostgresResource, write_frames
from vk_pipeline.testing.crawl import as_of, crawl, metadata, range_tags
from vk_pipeline.testing.databases import scratch_database
from vk_pipeline.testing.history import expected_revisions, stored_keys, stored_revisions

EVERYTHING = {"lookback_days": 3650, "fresh_hours": 0}
# Daily rates of change (fractions of live posts / comments), spread over the day's steps.
DAILY = {"new_posts": 0.03, "commented_posts": 0.05, "edits": 0.01, "deletions": 0.01}
RESTORES_PER_DAY = 0.1
TABLES = ("comment_revisions", "post_revisions", "post_counters", "group_counters")
AUTHORS_GROUP = 900_001
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def q(url: str, query: str, *params: Any) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def week_of_changes(
    world: World, url: str, instance: dg.DagsterInstance, res: dict, days: int, step_hours: float
) -> tuple[Counter, float]:
    keys = [str(g) for g in world.group_ids()]
    started = time.perf_counter()
    crawl(instance, res, keys, {"as_of": as_of(world), **EVERYTHING}, raise_on_error=True)
    print(f"initial crawl: {time.perf_counter() - started:.1f} s")
    steps = round(days * 24 / step_hours)
    frac = step_hours / 24
    expected: Counter = Counter()
    crawl_seconds = 0.0
    for _ in range(steps):
        known = stored_keys(url)
        start = len(world.change_log)
        world.advance(
            days=frac,
            **{k: v * frac for k, v in DAILY.items()},
            restores=RESTORES_PER_DAY * frac,
            growth=1,
        )
        t0 = time.perf_counter()
        crawl(instance, res, keys, {"as_of": as_of(world), **EVERYTHING}, raise_on_error=True)
        crawl_seconds += time.perf_counter() - t0
        for key, (kind, before) in expected_revisions(world.change_log[start:], known).items():
            expected[(key, kind, before)] += 1
    print(f"{steps} crawls of {step_hours:g} h steps: {crawl_seconds:.0f} s")
    return expected, crawl_seconds


def print_history(url: str) -> None:
    row = q(
        url,
        # The comment that went through the most kinds of change, then the most changes.
        "SELECT owner_id, id, count(DISTINCT kind) FROM vk.comment_revisions GROUP BY 1, 2"
        " ORDER BY 3 DESC, count(*) DESC, 1, 2 LIMIT 1",
    )
    if not row:
        print("no comment revision to show")
        return
    owner, cid, _ = row[0]
    print(f"\nSELECT * FROM vk.comment_history({owner}, {cid});")
    rows = q(
        url,
        "SELECT version, kind, is_deleted, from_id, left(text, 60), valid_from, valid_to"
        " FROM vk.comment_history(%s, %s)",
        owner,
        cid,
    )
    df = pd.DataFrame(rows, columns=["version", "kind", "deleted", "from_id", "text", "from", "to"])
    print(df.to_string(index=False))


def growth(url: str, instance: dg.DagsterInstance, res: dict, keys: list[str]) -> None:
    result = dg.materialize([post_growth], instance=instance, resources=res, tags=range_tags(keys))
    assert result.success
    post = q(
        url,
        "SELECT owner_id, post_id, group_id FROM vk.post_growth GROUP BY 1, 2, 3"
        " ORDER BY count(*) DESC, max(views) DESC NULLS LAST LIMIT 1",
    )
    owner, pid, gid = post[0]
    curve = q(
        url,
        "SELECT g.age_hours, g.views, g.likes, m.views, m.likes, m.posts"
        " FROM vk.group_growth m LEFT JOIN vk.post_growth g"
        "  ON g.age_hours = m.age_hours AND g.owner_id = %s AND g.post_id = %s"
        " WHERE m.group_id = %s ORDER BY m.age_hours",
        owner,
        pid,
        gid,
    )
    print(f"\ngrowth of post {owner}_{pid} against the median of group {gid}:")
    df = pd.DataFrame(
        curve,
        columns=["age_h", "views", "likes", "group_median_views", "group_median_likes", "posts"],
    )
    print(df.round(1).to_string(index=False))
    meta = metadata(result)["post_growth"]
    print("\npost_growth metadata `median_curve` (markdown, first lines):")
    print("\n".join(str(meta["median_curve"]).splitlines()[:8]))


# Per-row cost on disk beyond the row's own data: tuple header and line pointer (28 B), plus
# an index entry (about 40 B) per index. At the demo world's size the tables are a few pages
# each, mostly empty, so their size on disk says little about a year; rows x bytes a row does.
ROW_OVERHEAD = 28
INDEX_BYTES = 40


def storage(url: str, days: float, groups: int) -> None:
    print(f"\nstorage over {days:g} days, {groups} readable groups (demo world):")
    print(
        f"{'table':<18} {'rows':>7} {'rows/day':>9} {'on disk MB':>10} {'B/row':>6}"
        f" {'rows/yr, 1,000 groups':>22} {'GB/yr':>6}"
    )
    for table in TABLES:
        rows, size, width, indexes = q(
            url,
            f"SELECT count(*), pg_total_relation_size('vk.{table}'),"
            f" coalesce(avg(pg_column_size(t.*)), 0),"
            f" (SELECT count(*) FROM pg_indexes WHERE schemaname = 'vk' AND tablename = '{table}')"
            f" FROM vk.{table} t",
        )[0]
        per_row = float(width) + ROW_OVERHEAD + INDEX_BYTES * int(indexes)
        year_rows = rows / days / groups * 1000 * 365
        print(
            f"{table:<18} {rows:>7,} {rows / days:>9,.1f} {size / 1e6:>10.2f} {per_row:>6.0f}"
            f" {year_rows:>22,.0f} {year_rows * per_row / 1e9:>6.2f}"
        )


def _materialize_authors(
    instance: dg.DagsterInstance, res: dict, **config: Any
) -> tuple[dict, float]:
    started = time.perf_counter()
    result = dg.materialize(
        [authors],
        instance=instance,
        resources=res,
        partition_key=str(AUTHORS_GROUP),
        run_config={"ops": {"authors": {"config": config}}, **QUIET} if config else QUIET,
    )
    assert result.success
    return metadata(result)["authors"], time.perf_counter() - started


def authors_figures(url: str, instance: dg.DagsterInstance, res: dict, n: int) -> None:
    pg = PostgresResource(database_url=url)
    gid = AUTHORS_GROUP
    with pg.connection() as conn:
        write_frames(conn, "groups", pd.DataFrame({"id": [gid], "status": ["open"]}))
        write_frames(
            conn,
            "posts",
            pd.DataFrame(
                {
                    "owner_id": [-gid],
                    "id": [1],
                    "group_id": [gid],
                    "date": [pd.Timestamp("2024-12-01", tz="UTC")],
                }
            ),
        )
        ids = pd.array(range(10_000_001, 10_000_001 + n), dtype="Int64")
        write_frames(
            conn,
            "comments",
            pd.DataFrame(
                {
                    "owner_id": -gid,
                    "id": pd.array(range(1, n + 1), dtype="Int64"),
                    "group_id": gid,
                    "post_id": 1,
                    "from_id": ids,
                    "text": "…",
                }
            ),
        )
    instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, [str(gid)])
    meta, seconds = _materialize_authors(instance, res)
    print(
        f"\nauthors: {meta['new']:,} new -> {meta['vk_http_requests']} HTTP requests"
        f" ({meta['vk_api_calls']} users.get calls), {seconds:.1f} s through Dagster,"
        f" {meta['profiles']:,} profiles, {meta['deactivated']:,} deactivated"
    )
    stale = n // 10
    q(
        url,
        "UPDATE vk.authors SET fetched_at = fetched_at - interval '40 days'"
        " WHERE id IN (SELECT id FROM vk.authors WHERE id > 10000000 ORDER BY id LIMIT %s)"
        " RETURNING 1",
        stale,
    )
    meta, seconds = _materialize_authors(instance, res, refresh_after_days=30)
    print(
        f"stale refresh: {meta['refreshed']:,} profiles older than 30 days -> "
        f"{meta['vk_http_requests']} HTTP request(s), {seconds:.1f} s; new: {meta['new']}"
    )
    meta, seconds = _materialize_authors(instance, res)
    print(f"nothing stale: {meta['vk_http_requests']} HTTP requests, {seconds:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", help="admin URL of a server (default: embedded)")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--step-hours", type=float, default=6.0)
    parser.add_argument("--authors", type=int, default=100_000)
    parser.add_argument(
        "--crawl-rate", type=float, default=50.0, help="requests/s of the week's crawls"
    )
    parser.add_argument(
        "--rate", type=float, default=3.0, help="requests/s of authors (VK: 3 a user token)"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    world = World(DEMO_WORLD)
    server = EmulatorServer(world, rate=max(args.rate, args.crawl_rate)).start()
    try:
        with scratch_database(args.database_url) as url, dg.instance_for_test() as instance:
            res, authors_res = (
                build_resources(
                    database_url=url,
                    vk_api_base_url=server.base_url,
                    tokens=DEMO_TOKEN,
                    requests_per_second=rate,
                )
                for rate in (args.crawl_rate, args.rate)
            )
            keys = [str(g) for g in world.group_ids()]
            expected, _ = week_of_changes(world, url, instance, res, args.days, args.step_hours)
            stored = stored_revisions(url)
            missing = expected - stored
            extra = stored - expected
            by_kind = Counter((k[0][0], k[1]) for k in expected.elements())
            print(
                f"\nchange log (folded per crawl): {sum(expected.values()):,} changes {dict(by_kind)}"
            )
            print(
                f"revisions stored: {sum(stored.values()):,}; equal: {stored == expected};"
                f" missing: {sum(missing.values())}; extra: {sum(extra.values())}"
            )
            print_history(url)
            growth(url, instance, res, keys)
            readable = sum(1 for g in world.group_ids() if world.posts(g))
            storage(url, args.days, readable)
            authors_figures(url, instance, authors_res, args.authors)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
