"""Several tokens against the emulator: each keeps its own budget; a rejected or spent one is set
aside and the others carry on; fingerprints, never tokens, in every message."""

import pytest

from vk_pipeline.budget import SlidingWindowLimiter
from vk_pipeline.emulator import World, WorldSpec
from vk_pipeline.vk import (
    PostRef,
    VKClient,
    VKFatalError,
    VKQuotaError,
    fetch_comments,
    fingerprint,
    split_tokens,
)

TOKENS = ["tok-alpha-secret", "tok-beta-secret", "tok-gamma-secret"]


def client_for(server, tokens, rate=None, **kw) -> VKClient:
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_cap", 0.05)
    return VKClient(
        access_token=tokens,
        api_base_url=server.base_url,
        limiter=SlidingWindowLimiter(rate or float(server.rate), margin=0.02),
        **kw,
    )


def by_token(server) -> dict[str, dict]:
    return server.stats()["by_token"]


def test_split_tokens_takes_commas_newlines_and_drops_repeats():
    assert split_tokens("a, b\nc\r\n,a,,") == ["a", "b", "c"]
    assert split_tokens(None) == []
    assert fingerprint("a") == fingerprint("a") != fingerprint("b")
    assert len(fingerprint("a")) == 8


def test_requests_spread_over_every_token_without_error_6(emulator_factory):
    world = World(WorldSpec(seed=21, groups=2, posts=200, comments=6000, special_groups=False))
    server = emulator_factory(world=world, rate=5, tokens=TOKENS)
    refs = [PostRef(-g, p["id"]) for g in world.group_ids() for p in world.posts(g)]
    with client_for(server, TOKENS, rate=5) as client:
        assert client.concurrency == 3
        results = list(fetch_comments(client, refs))
    assert len(results) == len(refs)
    stats = by_token(server)
    counts = [stats[fingerprint(t)]["http_requests"] for t in TOKENS]
    assert all(c > 0 for c in counts), counts
    assert max(counts) - min(counts) <= max(2, sum(counts) // 4), counts
    assert server.stats()["errors"].get("6", 0) == 0


def test_a_rejected_token_is_set_aside_and_the_others_carry_on(emulator_factory):
    server = emulator_factory(tokens=TOKENS[:2])
    gid = server.world.group_ids()[0]
    warnings: list[str] = []
    revoked = "tok-revoked-secret"
    with client_for(server, [revoked, *TOKENS[:2]], warn=warnings.append) as client:
        for _ in range(6):
            assert client.call("groups.getById", group_ids=gid)
        assert list(client.tokens.retired) == [fingerprint(revoked)]
    assert any(fingerprint(revoked) in w for w in warnings)
    assert not any(revoked in w for w in warnings)


def test_with_no_token_left_the_run_fails_naming_fingerprints_only(emulator_factory):
    server = emulator_factory(tokens=TOKENS[:1])
    bad = ["tok-bad-one-secret", "tok-bad-two-secret"]
    with client_for(server, bad) as client, pytest.raises(VKFatalError) as info:
        client.call("groups.getById", group_ids=server.world.group_ids()[0])
    text = str(info.value)
    assert "no usable VK token left" in text
    assert all(fingerprint(t) in text and t not in text for t in bad)
    assert server.stats()["http_requests"] == 2  # each bad token asked once


def test_a_spent_quota_moves_that_method_to_another_token(emulator_factory):
    server = emulator_factory(tokens=TOKENS[:2], wall_get_daily_quota=3)
    world = server.world
    gid = next(g for g in world.group_ids() if world.group_kind(g) == "open" and world.posts(g))
    with client_for(server, TOKENS[:2]) as client:
        ids = [
            client.call("wall.get", owner_id=-gid, offset=i, count=1)["items"][0]["id"]
            for i in range(6)
        ]
        assert ids == [p["id"] for p in world.posts(gid)[:6]]
        with pytest.raises(VKQuotaError, match="all 2 tokens") as info:
            client.call("wall.get", owner_id=-gid, count=1)
        assert info.value.resets_in is not None
        asked = server.stats()["http_requests"]
        with pytest.raises(VKQuotaError):
            client.call("wall.get", owner_id=-gid, count=1)
        assert server.stats()["http_requests"] == asked  # known spent: not asked again
        assert client.call("groups.getById", group_ids=gid)  # other methods go on
