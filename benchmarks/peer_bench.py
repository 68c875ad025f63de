"""Peer benchmark: this pipeline against vk_api 11.10.1's own idioms, on one emulator world.

One seeded world, one emulator (VK's 3 requests/s per token), one run; each contender gets its
own token so the emulator counts its HTTP requests separately, and they run one after another so
each has its token's whole budget:

* pipeline - a full load through Dagster (`dg.materialize(vk_assets)`, a range run over every
  group) into a fresh database;
* vk_api get_all_iter - `VkTools.get_all_iter` per wall (`wall.get`) and per post with comments
  (`wall.getComments`, 10 replies inline), then per thread with more replies than came inline
  (`comment_id`);
* vk_api pool - walls as above, then `VkRequestsPool` for the first comment page of every post
  with comments, `get_all_iter` for posts whose top level has more (`current_level_count`), and
  threads as above.

vk_api runs with its defaults (RPS_DELAY 0.34 s, its own error-6 retry) and reaches the emulator
through its `session` argument (a requests.Session sending api.vk.ru/method/* to the emulator).
"Missing" counts what the emulator's truth has and the contender did not get: posts, and live
comments including replies (deleted stubs are not content and are not counted).

    .venv/bin/python benchmarks/peer_bench.py [--database-url URL] [--groups 10 --posts 3000
        --comments 75000] [--rate 3] [--seed 2026] [--only pipeline,get_all,pool]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import jconfig
import psycopg
import requests
import vk_api
from vk_api.requests_pool import VkRequestsPool
from vk_api.tools import VkTools

from vk_pipeline.emulator import EmulatorServer, World, WorldSpec
from vk_pipeline.emulator.truth import lower_bound_calls, requests_for
from vk_pipeline.resources import build_resources
from vk_pipeline.testing.crawl import crawl
from vk_pipeline.testing.databases import scratch_database

VK_METHOD_URL = "https://api.vk.ru/method/"
COMMENT_PARAMS = {"count": 100, "need_likes": 1, "preview_length": 0, "thread_items_count": 10}
CONTENDERS = {
    "pipeline": ("this pipeline (Dagster full load)", "peer-bench-pipeline"),
    "get_all": ("vk_api get_all_iter", "peer-bench-vk-api-get-all"),
    "pool": ("vk_api VkRequestsPool + get_all_iter", "peer-bench-vk-api-pool"),
}


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:8]


@dataclass
class Collected:
    posts: set[tuple[int, int]] = field(default_factory=set)  # (group id, post id)
    comments: set[tuple[int, int]] = field(default_factory=set)  # (group id, comment id)
    failures: int = 0  # calls the client gave up on (an exception from vk_api)


@dataclass
class Truth:
    posts: set[tuple[int, int]]
    comments: set[tuple[int, int]]

    @classmethod
    def of(cls, world: World) -> Truth:
        posts, comments = set(), set()
        for g in world.group_ids():
            for p in world.posts(g):
                posts.add((g, p["id"]))
                comments.update(
                    (g, c["id"]) for c in world.comments(g, p["id"]) if not c.get("deleted")
                )
        return cls(posts, comments)


# ---------------------------------------------------------------------- vk_api


class EmulatorSession(requests.Session):
    """vk_api posts to a fixed https://api.vk.ru/method/<name>; this sends it to the emulator."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/") + "/"

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if url.startswith(VK_METHOD_URL):
            url = self.base_url + url[len(VK_METHOD_URL) :]
        return super().request(method, url, *args, **kwargs)


def make_vk(base_url: str, token: str) -> vk_api.VkApi:
    return vk_api.VkApi(
        token=token,
        api_version="5.199",
        session=EmulatorSession(base_url),
        config=jconfig.MemoryConfig,
    )


def guarded(out: Collected, items: Callable[[], Iterable[dict[str, Any]]]) -> Iterator[dict]:
    """Items of one vk_api listing; a listing that raises counts as a failure (its rest is
    missing), as it would for a script that logs and moves on."""
    try:
        yield from items()
    except (vk_api.VkApiError, requests.RequestException, ValueError):
        out.failures += 1


def add_comments(
    tools: VkTools, out: Collected, gid: int, post_id: int, top: Iterable[dict[str, Any]]
) -> None:
    base = {"owner_id": -gid, "post_id": post_id, **COMMENT_PARAMS}
    for c in top:
        if not c.get("deleted"):
            out.comments.add((gid, c["id"]))
        thread = c.get("thread") or {}
        inline = thread.get("items") or []
        if thread.get("count", 0) > len(inline):
            inline = guarded(
                out,
                lambda c=c: tools.get_all_iter(
                    "wall.getComments", 100, {**base, "comment_id": c["id"]}
                ),
            )
        out.comments.update((gid, r["id"]) for r in inline)


def crawl_walls(tools: VkTools, out: Collected, gids: list[int]) -> list[tuple[int, dict]]:
    posts = []
    for gid in gids:
        for p in guarded(
            out, lambda gid=gid: tools.get_all_iter("wall.get", 100, {"owner_id": -gid})
        ):
            out.posts.add((gid, p["id"]))
            if (p.get("comments") or {}).get("count"):
                posts.append((gid, p))
    return posts


def run_get_all(base_url: str, token: str, gids: list[int]) -> Collected:
    vk = make_vk(base_url, token)
    tools, out = VkTools(vk), Collected()
    for gid, p in crawl_walls(tools, out, gids):
        values = {"owner_id": -gid, "post_id": p["id"], **COMMENT_PARAMS}
        top = guarded(out, lambda v=values: tools.get_all_iter("wall.getComments", 100, v))
        add_comments(tools, out, gid, p["id"], top)
    vk.http.close()
    return out


def run_pool(base_url: str, token: str, gids: list[int]) -> Collected:
    vk = make_vk(base_url, token)
    tools, out = VkTools(vk), Collected()
    posts = crawl_walls(tools, out, gids)
    try:
        with VkRequestsPool(vk) as pool:
            firsts = [
                (gid, p["id"], pool.method(
                    "wall.getComments", {"owner_id": -gid, "post_id": p["id"], **COMMENT_PARAMS}
                ))
                for gid, p in posts
            ]  # fmt: skip
    except (vk_api.VkApiError, requests.RequestException, ValueError):
        out.failures += 1
        firsts = [(g, pid, r) for g, pid, r in firsts if r.ready]
    for gid, post_id, result in firsts:
        if not result.ok:
            out.failures += 1
            continue
        page = result.result
        top: Iterable[dict[str, Any]] = page["items"]
        if page.get("current_level_count", 0) > len(page["items"]):
            values = {"owner_id": -gid, "post_id": post_id, **COMMENT_PARAMS}
            top = guarded(out, lambda v=values: tools.get_all_iter("wall.getComments", 100, v))
        add_comments(tools, out, gid, post_id, top)
    vk.http.close()
    return out


# ---------------------------------------------------------------------- the pipeline


def run_pipeline(
    base_url: str, token: str, world: World, admin_url: str | None, rate: float
) -> Collected:
    with (
        scratch_database(admin_url, prefix="vk_peer") as url,
        dg.instance_for_test() as instance,
    ):
        res = build_resources(
            database_url=url, vk_api_base_url=base_url, tokens=token, requests_per_second=rate
        )
        result, _seconds = crawl(instance, res, [str(g) for g in world.group_ids()])
        out = Collected(failures=0 if result.success else 1)
        with psycopg.connect(url) as conn:
            out.posts = set(
                conn.execute("SELECT group_id, id FROM vk.posts WHERE NOT is_deleted").fetchall()
            )
            out.comments = {
                (-owner, cid)
                for owner, cid in conn.execute(
                    "SELECT owner_id, id FROM vk.comments WHERE NOT is_deleted"
                ).fetchall()
            }
        return out


# ---------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", help="admin URL of a server (default: embedded)")
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--comments", type=int, default=75_000)
    parser.add_argument("--rate", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--only", default=",".join(CONTENDERS), help="comma-separated subset")
    args = parser.parse_args()
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = set(only) - set(CONTENDERS)
    if unknown:
        parser.error(f"--only: unknown contenders {sorted(unknown)}; known: {list(CONTENDERS)}")
    warnings.filterwarnings("ignore")
    logging.getLogger("vk_api").setLevel(logging.ERROR)

    world = World(
        WorldSpec(
            seed=args.seed,
            groups=args.groups,
            posts=args.posts,
            comments=args.comments,
            special_groups=False,
        )
    )
    truth = Truth.of(world)
    gids = world.group_ids()
    bound = requests_for(lower_bound_calls(world))
    rows = []
    tokens = [token for _, token in CONTENDERS.values()]
    with EmulatorServer(world, rate=args.rate, tokens=tokens).start() as server:
        for name in only:
            label, token = CONTENDERS[name]
            started = time.monotonic()
            if name == "pipeline":
                got = run_pipeline(server.base_url, token, world, args.database_url, args.rate)
            elif name == "get_all":
                got = run_get_all(server.base_url, token, gids)
            else:
                got = run_pool(server.base_url, token, gids)
            seconds = time.monotonic() - started
            stats = server.stats()["by_token"].get(token_key(token), {})
            rows.append((label, got, seconds, stats))

    sizes = world.stats()
    print(
        f"world: {args.groups} groups, {sizes['posts']:,} posts, {len(truth.comments):,} live "
        f"comments and replies (seed {args.seed}); emulator {args.rate:g} requests/s per token; "
        f"Postgres {'server' if args.database_url else 'embedded'}"
    )
    print(f"lower bound for any client: {bound} requests (ceil(needed API calls / 25))")
    print()
    print(
        "| contender | HTTP requests | / lower bound | wall s | requests/s over busy span | "
        "error-6 | posts missing | comments missing (incl. replies) | failed listings |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, got, seconds, st in rows:
        n = st.get("http_requests", 0)
        first, last, accepted = (
            st.get("first_accepted_at"),
            st.get("last_accepted_at"),
            st.get("accepted", 0),
        )
        busy = (accepted - 1) / (last - first) if first is not None and last > first else 0.0
        print(
            f"| {label} | {n} | {n / bound:.2f} | {seconds:.1f} | {busy:.2f} | "
            f"{st.get('errors', {}).get('6', 0)} | {len(truth.posts - got.posts)} of "
            f"{len(truth.posts):,} | {len(truth.comments - got.comments)} of "
            f"{len(truth.comments):,} | {got.failures} |"
        )


if __name__ == "__main__":
    main()
