"""VK client figures: a seeded world of ~2,000 posts and ~50,000 comments at 3 requests/s.

Prints, from one run: items equal to truth, HTTP requests / lower bound (ceil(inner API calls
needed / 25)), achieved request rate / limit, error-6 responses, and the request count with
batching off (measured at a high emulator rate: only its count matters, not its time).

    .venv/bin/python benchmarks/client_bench.py [--posts 2000 --comments 50000 --rate 3]
"""

from __future__ import annotations

import argparse
import time

from vk_pipeline.budget import SlidingWindowLimiter
from vk_pipeline.emulator import DEMO_TOKEN, EmulatorServer, World, WorldSpec
from vk_pipeline.emulator.truth import lower_bound_calls, requests_for
from vk_pipeline.vk import (
    PostRef,
    VKClient,
    WallRequest,
    fetch_comments,
    fetch_groups,
    fetch_walls,
)


def crawl(world: World, server: EmulatorServer, rate: float, use_execute: bool) -> dict:
    client = VKClient(
        access_token=DEMO_TOKEN,
        api_base_url=server.base_url,
        limiter=SlidingWindowLimiter(rate),
        use_execute=use_execute,
    )
    server.reset_stats()
    started = time.monotonic()
    with client:
        gids = world.group_ids()
        groups = fetch_groups(client, gids)
        walls = list(fetch_walls(client, [WallRequest(-g) for g in gids]))
        refs = [
            PostRef(w.owner_id, p["id"])
            for w in walls
            for p in w.posts
            if (p.get("comments") or {}).get("count", 0) > 0
        ]
        comments = {r.post: r for r in fetch_comments(client, refs)}
    elapsed = time.monotonic() - started
    # Only the fields asked for come back; each of them must equal the truth.
    exact = all(
        g.group is not None
        and g.group == {k: v for k, v in world.group(int(g.key)).items() if k in g.group}
        for g in groups
    )
    for wall in walls:
        gid = -wall.owner_id
        exact &= wall.posts == world.posts(gid)
        for post in wall.posts:
            ref = PostRef(wall.owner_id, post["id"])
            truth = sorted(c["id"] for c in world.comments(gid, post["id"]))
            got = sorted(c["id"] for c in comments[ref].comments) if ref in comments else []
            exact &= got == truth
    stats = server.stats()
    return {
        "exact": exact,
        "requests": stats["http_requests"],
        "calls": stats["api_calls"],
        "error6": stats["errors"].get("6", 0),
        "seconds": elapsed,
        "posts": sum(len(w.posts) for w in walls),
        "comments": sum(len(r.comments) for r in comments.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--comments", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    spec = WorldSpec(
        seed=args.seed,
        groups=args.groups,
        posts=args.posts,
        comments=args.comments,
        special_groups=False,
    )
    world = World(spec)
    bound_calls = lower_bound_calls(world)
    bound = requests_for(bound_calls)
    with EmulatorServer(world, rate=int(args.rate)).start() as server:
        batched = crawl(world, server, args.rate, use_execute=True)
        server.set_rate(100_000)
        plain = crawl(world, server, 100_000, use_execute=False)
    rate = batched["requests"] / batched["seconds"]
    print(
        f"world: {batched['posts']:,} posts, {batched['comments']:,} comments and replies "
        f"(seed {args.seed}); lower bound {bound_calls:,} calls -> {bound} requests"
    )
    print("| figure | value | goal |")
    print("|---|---|---|")
    print(f"| items equal to truth | {'yes' if batched['exact'] else 'NO'} | yes |")
    print(
        f"| HTTP requests / lower bound | {batched['requests']} / {bound} = {batched['requests'] / bound:.2f} | <= 1.2 |"
    )
    print(
        f"| achieved rate / limit | {rate:.2f} / {args.rate:g} = {rate / args.rate:.2f} | >= 0.9 |"
    )
    print(f"| error-6 responses | {batched['error6']} | 0 |")
    print(
        f"| requests with batching off | {plain['requests']} ({plain['requests'] / batched['requests']:.1f}x the batched count; "
        f"items equal to truth: {'yes' if plain['exact'] else 'NO'}) | |"
    )
    print(f"| batched run time | {batched['seconds']:.1f} s ({batched['calls']:,} API calls) | |")


if __name__ == "__main__":
    main()
