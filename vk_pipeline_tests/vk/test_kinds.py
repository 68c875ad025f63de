"""Token kinds learned from VK and routed by VK's method schema: service-only, community-only and
mixed pools against the emulator over HTTP, the kinds kept in real Postgres for every process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from vk_pipeline.budget.postgres import PostgresLimiter
from vk_pipeline.emulator import EmulatorServer, World
from vk_pipeline.storage import PostgresResource
from vk_pipeline.testing.truth import Stored
from vk_pipeline.testing.truth import truth as world_truth
from vk_pipeline.testing.worlds import FAST_RATE
from vk_pipeline.vk import (
    PostRef,
    VKClient,
    VKFatalError,
    fetch_comments,
    fetch_groups,
    fetch_walls,
    fingerprint,
)
from vk_pipeline.vk.paging import WallRequest
from vk_pipeline.vk.tokens import METHOD_KINDS

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "vk-api-schema"
USER_T = "kinds-user-token-secret"
CLUB_T = "kinds-club-token-secret"
SERVICE_T = "kinds-service-token-secret"


def test_method_kinds_are_the_vendored_schemas() -> None:
    schema = {}
    for f in sorted(SCHEMA.glob("*/methods.json")):
        for m in json.loads(f.read_text(encoding="utf-8"))["methods"]:
            schema[m["name"]] = frozenset(m["access_token_type"])
    assert {m: schema[m] for m in METHOD_KINDS} == METHOD_KINDS


@pytest.fixture
def limiter(database_url: str) -> PostgresLimiter:
    PostgresResource(database_url=database_url, schema_name="vk").ensure_schema()
    lim = PostgresLimiter(database_url, "vk", FAST_RATE, margin=0.0)
    yield lim
    lim.close()


@pytest.fixture
def server(emulator_factory: Any) -> EmulatorServer:
    return emulator_factory(
        tokens=[USER_T], group_tokens=[CLUB_T], service_tokens=[SERVICE_T], rate=FAST_RATE
    )


def client_for(server: EmulatorServer, limiter: PostgresLimiter, *tokens: str) -> VKClient:
    notes: list[str] = []
    client = VKClient(
        access_token=list(tokens),
        api_base_url=server.base_url,
        limiter=limiter,
        backoff_base=0.01,
        backoff_cap=0.05,
        warn=notes.append,
    )
    client.notes = notes  # type: ignore[attr-defined]
    return client


def readable(world: World) -> list[int]:
    return [g for g in world.group_ids() if world.group_kind(g) == "open" and world.posts(g)][:2]


def crawl(client: VKClient, world: World) -> tuple[dict, dict]:
    """Every post and comment of two open groups, as (group, id) → text."""
    posts, comments = {}, {}
    gids = readable(world)
    refs = []
    for wall in fetch_walls(client, [WallRequest(-g) for g in gids]):
        for p in wall.posts:
            posts[(-wall.owner_id, p["id"])] = p["text"]
            refs.append(PostRef(wall.owner_id, p["id"]))
    for result in fetch_comments(client, refs):
        for c in result.comments:
            if not c.get("deleted"):
                comments[(-result.post.owner_id, c["id"])] = c["text"]
    return posts, comments


def truth(world: World) -> Stored:
    """What `crawl` should find: the two groups' live posts and comments."""
    return world_truth(world, readable(world))


def errors(server: EmulatorServer, code: int) -> int:
    return int(server.stats()["errors"].get(str(code), 0))


def stored_kinds(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT token_fp, kind FROM vk.token_kinds").fetchall())


def test_service_only_pool_pages_plainly_and_equals_the_truth(
    server: EmulatorServer, limiter: PostgresLimiter, database_url: str
) -> None:
    with client_for(server, limiter, SERVICE_T) as client:
        assert crawl(client, server.world) == truth(server.world)
        assert errors(server, 28) == 1  # the first execute settles it
        assert client.stats.routing and "25" in client.stats.routing
        assert client.stats.as_metadata()["vk_token_kinds"] == {"service": 1}
        assert sum("no user token" in n for n in client.notes) == 1  # said once
        assert client.stats.requests_by_method["execute"] == 1
    assert stored_kinds(database_url) == {fingerprint(SERVICE_T): "service"}
    # A second process (same budget) knows the kind: no execute at all, no error 28.
    server.reset_stats()
    with client_for(server, limiter, SERVICE_T) as again:
        assert crawl(again, server.world) == truth(server.world)
        assert errors(server, 28) == 0
        assert again.stats.requests_by_method["execute"] == 0


def test_community_only_pool_fails_at_once_naming_the_kind_needed(
    server: EmulatorServer, limiter: PostgresLimiter, database_url: str
) -> None:
    gid = readable(server.world)[0]
    with client_for(server, limiter, CLUB_T) as client:
        # What a community token may call, it calls.
        [group] = fetch_groups(client, [gid])
        assert group.group is not None
        with pytest.raises(VKFatalError) as info:
            list(fetch_walls(client, [WallRequest(-gid)]))
    message = str(info.value)
    assert "community" in message and "user or service token" in message
    assert fingerprint(CLUB_T) in message and CLUB_T not in message
    assert errors(server, 27) == 1
    assert stored_kinds(database_url) == {fingerprint(CLUB_T): "group"}
    # Another process fails without asking VK at all.
    server.reset_stats()
    with client_for(server, limiter, CLUB_T) as again, pytest.raises(VKFatalError):
        list(fetch_walls(again, [WallRequest(-gid)]))
    assert server.stats()["http_requests"] == 0


def test_mixed_pool_routes_each_kind_to_what_it_can_do(
    server: EmulatorServer, limiter: PostgresLimiter, database_url: str
) -> None:
    with client_for(server, limiter, USER_T, CLUB_T, SERVICE_T) as client:
        assert crawl(client, server.world) == truth(server.world)
        gids = server.world.group_ids()
        for _ in range(6):
            fetch_groups(client, gids[:1])
    assert errors(server, 27) <= 1 and errors(server, 28) <= 1
    by_token = server.stats()["by_token"]
    user, club, service = (fingerprint(t)[:8] for t in (USER_T, CLUB_T, SERVICE_T))
    # Listing spreads over every token; execute packs go on the user token only (after the
    # one answer that settled each other token's kind).
    for fp in (user, club, service):
        assert by_token[fp]["by_method"]["groups.getById"]["http_requests"] >= 1
    assert by_token[user]["by_method"]["execute"]["http_requests"] > 3
    assert by_token[club]["by_method"].get("execute", {"http_requests": 0})["http_requests"] <= 1
    assert by_token[service]["by_method"].get("execute", {"http_requests": 0})["http_requests"] <= 1
    kinds = stored_kinds(database_url)
    assert kinds.get(user) == "user"
    assert all(t not in str(kinds) for t in (USER_T, CLUB_T, SERVICE_T))
    # A second process that knows every kind sends no request a token's kind cannot make.
    server.reset_stats()
    with client_for(server, limiter, USER_T, CLUB_T, SERVICE_T) as again:
        assert crawl(again, server.world) == truth(server.world)
    assert errors(server, 27) == 0 and errors(server, 28) == 0


def test_each_kind_has_its_own_rate(emulator_factory: Any, database_url: str) -> None:
    """The shared budget paces a service token at VK_SERVICE_RATE and a user token at 3/s: the
    emulator enforces VK's per-kind rates and answers no error 6."""
    server = emulator_factory(tokens=[USER_T], service_tokens=[SERVICE_T], rate=3, service_rate=5)
    PostgresResource(database_url=database_url, schema_name="vk").ensure_schema()
    lim = PostgresLimiter(database_url, "vk", 3, margin=0.08)
    try:
        client = VKClient(
            access_token=[USER_T, SERVICE_T],
            api_base_url=server.base_url,
            limiter=lim,
            kind_rates={"user": 3, "service": 5, "group": 20},
        )
        gid = server.world.group_ids()[0]
        lim.learn_kind(fingerprint(SERVICE_T), "service", "test")
        lim.learn_kind(fingerprint(USER_T), "user", "test")
        with client:
            for _ in range(24):
                client.call("groups.getById", group_ids=gid)
    finally:
        lim.close()
    by_token = server.stats()["by_token"]
    assert server.stats()["rate_limited"] == 0
    # In the same span the service token (5/s) sends more than the user token (3/s).
    assert by_token[fingerprint(SERVICE_T)]["accepted"] > by_token[fingerprint(USER_T)]["accepted"]


def test_a_kind_settled_while_a_request_waits_for_its_slot_is_honoured() -> None:
    """Another request settles a token's kind (community) while this one waits for that
    token's slot: the slot is given up and the token is not sent an execute pack."""
    from vk_pipeline.budget import SlidingWindowLimiter
    from vk_pipeline.vk.routing import Router
    from vk_pipeline.vk.stats import ClientStats
    from vk_pipeline.vk.tokens import TokenPool

    pool = TokenPool([USER_T, CLUB_T])
    settled: list[str] = []

    class Racing(SlidingWindowLimiter):
        def acquire(self, keys, methods=(), rates=None):  # type: ignore[no-untyped-def]
            got = super().acquire(keys, methods, rates)
            if not settled:  # the other request's answer lands now: this token is community
                settled.append(str(got))
                router.learn(str(got), "group", "execute: error 27 inside")
            return got

    router = Router(
        pool, Racing(1000), kind_rates=None, hold_seconds=60, stats=ClientStats(), say=print
    )
    got = router.acquire({"wall.get"}, {"execute", "wall.get"})
    assert got != settled[0] and pool.kind(settled[0]) == "group"
