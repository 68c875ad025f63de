"""Asset figures: a full load of 20 emulator groups through Dagster into Postgres at 3 requests/s,
then a refresh after about 1 % of posts got new comments.

Prints, from one run: exact match with truth, HTTP requests / lower bound (ceil(inner API calls
needed / 25)), error-6 responses; for the refresh, requests used against what post listing alone
costs plus ceil(changed comment pages / 25).

    .venv/bin/python benchmarks/assets_bench.py [--database-url URL] [--posts 5000 --comments 150000]
"""

from __future__ import annotations

import argparse
import warnings

import dagster as dg

from vk_pipeline.emulator import DEMO_TOKEN, World, WorldSpec
from vk_pipeline.emulator.truth import comment_pages, lower_bound_calls, requests_for
from vk_pipeline.resources import build_resources
from vk_pipeline.testing.crawl import as_of, crawl, metadata
from vk_pipeline.testing.databases import scratch_database
from vk_pipeline.testing.processes import EmulatorProcess
from vk_pipeline.testing.truth import matches_truth


def busy_rate(stats: dict) -> float:
    """Accepted requests per second between the first and the last, by the emulator's clock."""
    span = stats["last_accepted_at"] - stats["first_accepted_at"]
    return (stats["accepted"] - 1) / span if span > 0 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", help="admin URL of a server (default: embedded)")
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--comments", type=int, default=150_000)
    parser.add_argument("--rate", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--concurrency", type=int, default=0, help="requests in flight (0: auto)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    spec = WorldSpec(
        seed=args.seed,
        groups=args.groups,
        posts=args.posts,
        comments=args.comments,
        special_groups=False,
    )
    world = World(spec)
    with (
        EmulatorProcess(spec, rate=args.rate) as server,
        scratch_database(args.database_url) as url,
        dg.instance_for_test() as instance,
    ):
        res = build_resources(
            database_url=url,
            vk_api_base_url=server.base_url,
            tokens=DEMO_TOKEN,
            requests_per_second=args.rate,
            concurrency=args.concurrency,
        )
        keys = [str(g) for g in world.group_ids()]
        stats = world.stats()
        bound = requests_for(lower_bound_calls(world))
        server.reset_stats()
        _result, seconds = crawl(instance, res, keys, {"as_of": as_of(world)})
        full = server.stats()
        exact = matches_truth(world, url)

        change = server.advance(
            world, days=1, new_posts=0.0, commented_posts=0.01, edits=0.0, deletions=0.0
        )
        changed_pages = sum(comment_pages(world.comments(g, pid)) for g, pid in change["affected"])
        server.reset_stats()
        # Only what the counts say moved: no lookback window, no staleness cycle turning.
        result, refresh_seconds = crawl(
            instance,
            res,
            keys,
            {"as_of": as_of(world), "lookback_days": 0, "verify_days": 100_000},
        )
        meta = metadata(result)
        refresh = server.stats()
        listing = meta["posts"]["vk_http_requests"] + meta["groups"]["vk_http_requests"]
        expected = listing + requests_for(changed_pages)
        exact_after = matches_truth(world, url)
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
    rate = busy_rate(full)
    print(
        f"| full load: achieved rate (busy span, emulator's clock) / limit | {rate:.2f} / {args.rate:g}"
        f" = {rate / args.rate:.2f} | >= 0.93 |"
    )
    print(
        f"| full load: wall time of the run | {seconds:.0f} s ({full['http_requests'] / seconds:.2f}"
        " requests/s including Dagster's start-up and steps) | |"
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
