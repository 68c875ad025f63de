"""Asset figures: a full load of 20 emulator groups through Dagster into Postgres at 3 requests/s,
then a refresh after about 1 % of posts got new comments.

Prints, from one run: exact match with truth, HTTP requests / lower bound (ceil(inner API calls
needed / 25)), error-6 responses; for the refresh, requests used against what post listing alone
costs plus ceil(changed comment pages / 25).

    .venv/bin/python benchmarks/assets_bench.py [--database-url URL] [--posts 5000 --comments 150000]
"""

from __future__ import annotations

import argparse
import time
import uuid
import warnings

import dagster as dg
import psycopg
from psycopg import sql

from vk_pipeline.assets import vk_assets
from vk_pipeline.emulator import DEMO_TOKEN, EmulatorServer, World, WorldSpec
from vk_pipeline.emulator.truth import comment_pages, lower_bound_calls, requests_for
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.storage import (
    PostgresIOManager,
    PostgresResource,
    close_pools,
    resolve_database_url,
    with_dbname,
)
from vk_pipeline.vk import VKResource

RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def matches_truth(world: World, url: str) -> bool:
    with psycopg.connect(url) as conn:
        posts = set(
            conn.execute("SELECT group_id, id FROM vk.posts WHERE NOT is_deleted").fetchall()
        )
        comments = {
            (owner, cid): text
            for owner, cid, text in conn.execute(
                "SELECT owner_id, id, text FROM vk.comments WHERE NOT is_deleted"
            ).fetchall()
        }
    truth_posts = {(g, p["id"]) for g in world.group_ids() for p in world.posts(g)}
    truth_comments = {
        (-g, c["id"]): c["text"]
        for g in world.group_ids()
        for p in world.posts(g)
        for c in world.comments(g, p["id"])
        if not c.get("deleted")
    }
    return posts == truth_posts and comments == truth_comments


def run(instance: dg.DagsterInstance, resources: dict, keys: list[str]) -> tuple[dict, float]:
    started = time.monotonic()
    result = dg.materialize(
        vk_assets,
        instance=instance,
        resources=resources,
        tags=dict(zip(RANGE, (keys[0], keys[-1]), strict=True)),
    )
    elapsed = time.monotonic() - started
    meta = {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }
    return meta, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", help="admin URL of a server (default: embedded)")
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--comments", type=int, default=150_000)
    parser.add_argument("--rate", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    world = World(
        WorldSpec(
            seed=args.seed,
            groups=args.groups,
            posts=args.posts,
            comments=args.comments,
            special_groups=False,
        )
    )
    admin = resolve_database_url(args.database_url)
    dbname = f"vk_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    url = with_dbname(admin, dbname)
    try:
        with (
            EmulatorServer(world, rate=int(args.rate)).start() as server,
            dg.instance_for_test() as instance,
        ):
            postgres = PostgresResource(database_url=url)
            resources = {
                "vk": VKResource(
                    access_token=DEMO_TOKEN,
                    api_base_url=server.base_url,
                    requests_per_second=args.rate,
                ),
                "postgres": postgres,
                "io_manager": PostgresIOManager(postgres=postgres),
            }
            keys = [str(g) for g in world.group_ids()]
            instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, keys)
            stats = world.stats()
            bound = requests_for(lower_bound_calls(world))
            server.reset_stats()
            _meta, seconds = run(instance, resources, keys)
            full = server.stats()
            exact = matches_truth(world, url)

            change = world.advance(
                days=1, new_posts=0.0, commented_posts=0.01, edits=0.0, deletions=0.0
            )
            changed_pages = sum(
                comment_pages(world.comments(g, pid)) for g, pid in change["affected"]
            )
            server.reset_stats()
            meta, refresh_seconds = run(instance, resources, keys)
            refresh = server.stats()
            listing = meta["posts"]["vk_http_requests"] + meta["groups"]["vk_http_requests"]
            expected = listing + requests_for(changed_pages)
            exact_after = matches_truth(world, url)
    finally:
        close_pools()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
    print(
        f"world: {args.groups} groups, {stats['posts']:,} posts, {stats['comments']:,} comments and replies "
        f"(seed {args.seed}), {args.rate:g} requests/s, Postgres {'server' if args.database_url else 'embedded'}"
    )
    print("| figure | value | goal |")
    print("|---|---|---|")
    print(f"| full load: database equals truth | {'yes' if exact else 'NO'} | yes |")
    print(
        f"| full load: HTTP requests / lower bound | {full['http_requests']} / {bound} = {full['http_requests'] / bound:.2f} | <= 1.2 |"
    )
    print(f"| full load: error-6 responses | {full['errors'].get('6', 0)} | 0 |")
    print(
        f"| full load: wall time | {seconds:.0f} s ({full['http_requests'] / seconds:.2f} requests/s) | |"
    )
    print(
        f"| refresh ({len(change['affected'])} posts got {change['new_comments'] + change['new_replies']} comments): "
        f"requests / (listing {listing} + ceil({changed_pages} pages / 25)) | {refresh['http_requests']} / {expected} = "
        f"{refresh['http_requests'] / expected:.2f} | <= 1.2 |"
    )
    print(f"| refresh: database equals truth | {'yes' if exact_after else 'NO'} | yes |")
    print(
        f"| refresh: wall.getComments calls | {refresh['by_method'].get('wall.getComments', {}).get('api_calls', 0)} (changed pages {changed_pages}) | |"
    )
    print(f"| refresh: wall time | {refresh_seconds:.0f} s | |")


if __name__ == "__main__":
    main()
