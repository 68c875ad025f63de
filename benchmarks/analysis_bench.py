"""Analysis figures: materializing the four analysis assets for one group of 1,000,000 comments.

Rows are generated as in search_bench.py (emulator texts, threads with replies to replies, a few
users writing most comments) and loaded by COPY through `write_frames`. Then, through Dagster
(`dg.materialize` of the analysis multi-asset, one partition):

1. the first build (every table rebuilt from all of the group's rows);
2. a day of changes written the way the crawl writes them (upserts through `write_frames`, so
   `last_changed_at` moves only where content changed; each re-read post gets its sync state):
   new posts with comments, new comments on 1 % of posts, 0.5 % of the comments of re-read
   posts edited and as many deleted, fresh counters on the newest 5 % of posts;
3. the build after that day, incremental (the default), timed;
4. the same state rebuilt in full (`full_rebuild`), timed, and compared row for row with 3;
5. a build with nothing changed.

    .venv/bin/python benchmarks/analysis_bench.py                      # embedded server
    .venv/bin/python benchmarks/analysis_bench.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python benchmarks/analysis_bench.py --comments 100000    # a quick check
"""

from __future__ import annotations

import argparse
import time
import warnings
from datetime import timedelta
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
from search_bench import NOW, Generator, load_groups

from vk_pipeline.assets.analysis import ANALYSIS_TABLES, analysis_assets
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.storage import PostgresResource, embedded_database_url
from vk_pipeline.testing.databases import create_database, drop_database

GROUP = 300_001
KEYS = {
    "post_stats": "owner_id, post_id",
    "group_activity_daily": "group_id, day",
    "top_commenters": "group_id, from_id",
    "hashtags_mentions_links": "group_id, day, source, kind, value",
}


def materialize(
    instance: dg.DagsterInstance, pg: PostgresResource, **config: Any
) -> tuple[float, dict[str, dict[str, Any]]]:
    started = time.perf_counter()
    result = dg.materialize(
        analysis_assets,
        instance=instance,
        resources={"postgres": pg},
        partition_key=str(GROUP),
        run_config={"ops": {"analysis": {"config": config}}} if config else None,
    )
    elapsed = time.perf_counter() - started
    assert result.success
    meta = {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }
    return elapsed, meta


def day_of_changes(
    pg: PostgresResource, gen: Generator, wall: Any, rng: np.random.Generator
) -> dict:
    """What one daily crawl writes for the group, through the storage layer's upserts."""
    day = NOW + timedelta(days=1)
    posts = wall.posts
    n = len(posts)
    counts: dict[str, int] = {}
    # New posts (2 %), most with a few comments.
    new = gen.wall(wall.group_id, max(1, n // 50), first_id=wall.next_id)
    new.posts["date"] = pd.to_datetime(
        day.timestamp() - rng.uniform(0, 86400, len(new.posts)), unit="s", utc=True
    )
    wall.next_id = new.next_id
    new_counts = rng.poisson(8, len(new.posts))
    new.posts["comments_count"] = pd.array(new_counts, dtype="Int64")
    pg.write_frames("posts", new.posts)
    wall.posts = pd.concat([posts, new.posts], ignore_index=True)
    # New comments under them and under 1 % of the older posts.
    commented = rng.choice(posts["id"].to_numpy(), max(1, n // 100), replace=False)
    extra = rng.poisson(10, len(commented)) + 1
    frames = list(gen.comments(wall, new.posts["id"].to_numpy(), new_counts, after=day))
    frames += list(gen.comments(wall, commented, extra, after=day))
    fresh = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    counts["new_posts"] = len(new.posts)
    counts["new_comments"] = len(fresh)
    if len(fresh):
        pg.write_frames("comments", fresh)
    # Edits and deletions among the comments of the re-read posts (0.5 % each).
    reread = np.concatenate([commented, new.posts["id"].to_numpy()])
    with pg.connection() as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM vk.comments WHERE owner_id = %s AND post_id = ANY(%s)"
                " AND NOT is_deleted",
                (-wall.group_id, reread.tolist()),
            ).fetchall()
        ]
    k = max(1, len(ids) // 200)
    picked = rng.choice(ids, 2 * k, replace=False) if len(ids) >= 2 * k else np.array(ids)
    edited, deleted = picked[:k], picked[k:]
    if len(edited):
        pg.write_frames(
            "comments",
            pd.DataFrame(
                {
                    "owner_id": pd.array([-wall.group_id] * len(edited), dtype="Int64"),
                    "id": pd.array(edited, dtype="Int64"),
                    "text": [gen.text() + " (изменено)" for _ in edited],
                }
            ),
        )
    if len(deleted):
        pg.write_frames(
            "comments",
            pd.DataFrame(
                {
                    "owner_id": pd.array([-wall.group_id] * len(deleted), dtype="Int64"),
                    "id": pd.array(deleted, dtype="Int64"),
                    "is_deleted": True,
                    "deleted_seen_at": pd.Timestamp(day),
                }
            ),
        )
    counts["edited_comments"] = len(edited)
    counts["deleted_comments"] = len(deleted)
    # Sync state of every re-read post, counters of the newest 5 % (views and likes grow).
    newest = wall.posts.sort_values("date").tail(max(1, len(wall.posts) // 20))
    pg.write_frames(
        "posts",
        pd.DataFrame(
            {
                "owner_id": pd.array(-newest["group_id"].astype("int64"), dtype="Int64"),
                "id": pd.array(newest["id"], dtype="Int64"),
                "likes_count": pd.array(newest["likes_count"].fillna(0) + 3, dtype="Int64"),
                "views_count": pd.array(newest["views_count"].fillna(0) + 100, dtype="Int64"),
            }
        ),
    )
    with pg.connection() as conn:
        live = conn.execute(
            "SELECT post_id, count(*) FILTER (WHERE NOT is_deleted) FROM vk.comments"
            " WHERE owner_id = %s AND post_id = ANY(%s) GROUP BY post_id",
            (-wall.group_id, reread.tolist()),
        ).fetchall()
    pg.write_frames(
        "posts",
        pd.DataFrame(
            {
                "owner_id": pd.array([-wall.group_id] * len(live), dtype="Int64"),
                "id": pd.array([pid for pid, _ in live], dtype="Int64"),
                "comments_count": pd.array([c for _, c in live], dtype="Int64"),
                "comments_synced_count": pd.array([c for _, c in live], dtype="Int64"),
                "comments_synced_at": pd.Timestamp(day),
                "comments_status": "ok",
            }
        ),
    )
    counts["reread_posts"] = len(reread)
    counts["posts_with_new_counters"] = len(newest)
    return counts


def differences(pg: PostgresResource, saved: dict[str, str]) -> dict[str, int]:
    """Rows that differ between the saved copy and the table (computed_at aside)."""
    out = {}
    with pg.connection() as conn:
        for table, copy in saved.items():
            cols = [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = 'vk'"
                    " AND table_name = %s AND column_name <> 'computed_at'",
                    (table,),
                ).fetchall()
            ]
            c = ", ".join(cols)
            [(n,)] = conn.execute(
                f"SELECT count(*) FROM ((SELECT {c} FROM vk.{table} EXCEPT ALL SELECT {c} FROM {copy})"
                f" UNION ALL (SELECT {c} FROM {copy} EXCEPT ALL SELECT {c} FROM vk.{table})) d"
            ).fetchall()
            out[table] = n
    return out


def report(label: str, elapsed: float, meta: dict[str, dict[str, Any]]) -> None:
    parts = ", ".join(
        f"{t} {meta[t]['table_seconds']:.2f} s ({'/'.join(meta[t]['modes'])}, "
        f"{meta[t]['rows_written']:,} rows)"
        for t in ANALYSIS_TABLES
    )
    print(f"{label:34} {elapsed:7.2f} s   {parts}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="admin URL (default: the embedded server)")
    parser.add_argument("--comments", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=dg.BetaWarning)

    admin_url = args.database_url or embedded_database_url(dbname="postgres")
    url = create_database(admin_url, "vkanalysis")
    try:
        pg = PostgresResource(database_url=url)
        pg.ensure_schema()
        gen = Generator(args.seed)
        started = time.perf_counter()
        walls = load_groups(pg, gen, {GROUP: args.comments})
        loaded = time.perf_counter() - started
        with psycopg.connect(url) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            n, posts = conn.execute(
                "SELECT (SELECT count(*) FROM vk.comments), (SELECT count(*) FROM vk.posts)"
            ).fetchone()
        print(
            f"PostgreSQL {version} ({'server' if args.database_url else 'embedded'}); one group: "
            f"{n:,} comments under {posts:,} posts, generated and loaded in {loaded:.0f} s\n"
        )
        rng = np.random.default_rng(args.seed)
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, [str(GROUP)])
            first, meta = materialize(instance, pg)
            report("1. first build", first, meta)
            changes = day_of_changes(pg, gen, walls[GROUP], rng)
            print(f"{'2. a day of changes':34} {changes}")
            with pg.connection() as conn:
                conn.autocommit = True
                conn.execute("VACUUM ANALYZE vk.comments")
                conn.execute("VACUUM ANALYZE vk.posts")
                conn.autocommit = False
            incremental, meta = materialize(instance, pg)
            report("3. after the day, incremental", incremental, meta)
            saved = {}
            with pg.connection() as conn:
                for table in ANALYSIS_TABLES:
                    conn.execute(f"CREATE TABLE public.saved_{table} AS SELECT * FROM vk.{table}")
                    saved[table] = f"public.saved_{table}"
            rebuild, meta = materialize(instance, pg, full_rebuild=True)
            report("4. after the day, full rebuild", rebuild, meta)
            diff = differences(pg, saved)
            unchanged, meta = materialize(instance, pg)
            report("5. nothing changed", unchanged, meta)
        print(
            f"\nafter a day: incremental {incremental:.2f} s / full rebuild {rebuild:.2f} s = "
            f"{incremental / rebuild:.2f}; first build {first:.2f} s; unchanged {unchanged:.2f} s"
        )
        print(f"rows differing between incremental and full rebuild: {diff}")
    finally:
        if args.keep:
            print(f"kept: {url}")
        else:
            drop_database(admin_url, url)


if __name__ == "__main__":
    main()
