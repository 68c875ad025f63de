"""Paging returns exactly the emulator's truth: every post, comment and reply, once."""

from collections import Counter

import pytest

from vk_pipeline.emulator import World, WorldSpec
from vk_pipeline.vk import (
    PostRef,
    VKQuotaError,
    WallRequest,
    fetch_comments,
    fetch_groups,
    fetch_wall,
    fetch_walls,
)


def readable_groups(world: World) -> list[int]:
    return [g for g in world.group_ids() if world.posts(g)]


def test_groups_by_id_and_screen_name(emulator_factory, make_client):
    server = emulator_factory()
    world = server.world
    client = make_client(server)
    ids = world.group_ids()
    name = world.group(ids[0])["screen_name"]
    results = fetch_groups(client, [*map(str, ids), name, "999999999"])
    by_key = {r.key: r for r in results}
    for gid in ids:
        assert by_key[str(gid)].group["id"] == gid
        assert by_key[str(gid)].group["name"] == world.group(gid)["name"]
    assert by_key[name].group["id"] == ids[0]
    assert by_key["999999999"].group is None and by_key["999999999"].error.code == 100


def test_groups_by_id_old_version_shape(emulator_factory, make_client):
    server = emulator_factory()
    client = make_client(server, api_version="5.131")
    gid = server.world.group_ids()[0]
    [result] = fetch_groups(client, [gid])
    assert result.group["id"] == gid


def test_wall_paging_equals_truth_pinned_first(emulator_factory, make_client):
    server = emulator_factory()
    world = server.world
    client = make_client(server)
    for gid in readable_groups(world):
        result = fetch_wall(client, -gid)
        truth = world.posts(gid)
        assert [p["id"] for p in result.posts] == [p["id"] for p in truth]
        assert result.posts == truth
        assert result.total == len(truth)


def test_wall_since_stops_early_but_skips_an_old_pinned_post(emulator_factory, make_client):
    server = emulator_factory()
    world = server.world
    client = make_client(server)
    gid = max(readable_groups(world), key=lambda g: len(world.posts(g)))
    truth = world.posts(gid)
    unpinned = [p for p in truth if not p.get("is_pinned")]
    since = unpinned[min(150, len(unpinned) - 1)]["date"]
    result = fetch_wall(client, -gid, since=since)
    expected = {p["id"] for p in truth if p["date"] >= since}
    assert {p["id"] for p in result.posts} == expected
    assert server.stats()["by_method"]["wall.get"]["api_calls"] <= len(truth) // 100


def test_posts_arriving_while_paging_are_neither_lost_nor_doubled(emulator_factory, make_client):
    world = World(WorldSpec(seed=11, groups=1, posts=700, comments=100, special_groups=False))
    server = emulator_factory(world=world)
    gid = world.group_ids()[0]
    before = {p["id"] for p in world.posts(gid)}
    client = make_client(server, execute_batch_size=2)
    advanced = []

    def on_page(_partial) -> None:
        if not advanced:
            advanced.append(
                world.advance(days=1, new_posts=0.1, commented_posts=0, edits=0, deletions=0)
            )

    result = fetch_wall(client, -gid, on_page=on_page)
    ids = [p["id"] for p in result.posts]
    assert len(ids) == len(set(ids))
    assert before <= set(ids)
    # The newcomers landed at the head, ahead of where paging began: read in the same scan.
    [change] = advanced
    assert change["new_posts"] > 0
    assert set(ids) == {p["id"] for p in world.posts(gid)}


def test_a_quota_stop_keeps_every_wall_completed_before_it(emulator_factory, make_client):
    world = World(WorldSpec(seed=12, groups=6, posts=900, comments=100, special_groups=False))
    server = emulator_factory(world=world, wall_get_daily_quota=6)
    client = make_client(server, execute_batch_size=5)
    done = []
    with pytest.raises(VKQuotaError, match=r"wall\.get") as info:
        for result in fetch_walls(client, [WallRequest(-g) for g in world.group_ids()]):
            done.append(result)
    assert "5,000" in str(info.value)  # VK's published wall.get quota is named
    assert done, "walls read in full before the stop are handed out"
    for result in done:
        assert [p["id"] for p in result.posts] == [p["id"] for p in world.posts(-result.owner_id)]


def all_comment_truth(world: World) -> dict[PostRef, list[dict]]:
    return {
        PostRef(-g, p["id"]): world.comments(g, p["id"])
        for g in readable_groups(world)
        for p in world.posts(g)
    }


def check_comments(results, truth: dict[PostRef, list[dict]]) -> None:
    got = {r.post: r for r in results}
    assert set(got) == set(truth)
    for ref, comments in truth.items():
        result = got[ref]
        ids = [c["id"] for c in result.comments]
        assert len(ids) == len(set(ids)), ref
        assert sorted(ids) == sorted(c["id"] for c in comments), ref
        by_id = {c["id"]: c for c in result.comments}
        for c in comments:
            mine = {k: v for k, v in by_id[c["id"]].items() if k != "thread"}
            theirs = {k: v for k, v in c.items() if k != "thread"}
            assert mine == theirs


def test_comment_paging_equals_truth_with_every_reply(emulator_factory, make_client):
    server = emulator_factory()
    world = server.world
    truth = all_comment_truth(world)
    closed = {
        PostRef(-g, p) for g in world.group_ids() for p in world.post_ids_with_comments_closed(g)
    }
    client = make_client(server)
    results = list(fetch_comments(client, list(truth)))
    for r in results:
        assert (r.error is not None) == (r.post in closed), r.post
        if r.error:
            assert r.error.code == 212
    check_comments(results, truth)
    replies = sum(1 for cs in truth.values() for c in cs if c.get("parents_stack"))
    assert replies > 0
    # Long threads were paged by comment_id.
    assert any(len(c.get("parents_stack") or []) for cs in truth.values() for c in cs)


def test_batched_and_unbatched_paging_agree(emulator_factory, make_client):
    server = emulator_factory()
    world = server.world
    gid = max(readable_groups(world), key=lambda g: len(world.posts(g)))
    refs = [PostRef(-gid, p["id"]) for p in world.posts(gid)]
    batched = make_client(server)
    plain = make_client(server, use_execute=False)
    a = {r.post: sorted(c["id"] for c in r.comments) for r in fetch_comments(batched, refs)}
    b = {r.post: sorted(c["id"] for c in r.comments) for r in fetch_comments(plain, refs)}
    assert a == b
    assert batched.stats.http_requests * 5 < plain.stats.http_requests
    assert batched.stats.api_calls == plain.stats.api_calls
    wall_a = fetch_wall(batched, -gid)
    wall_b = fetch_wall(plain, -gid)
    assert wall_a.posts == wall_b.posts


def test_accounting_matches_the_server(emulator_factory, make_client):
    server = emulator_factory()
    world = server.world
    gid = max(readable_groups(world), key=lambda g: len(world.posts(g)))
    client = make_client(server)
    list(fetch_comments(client, [PostRef(-gid, p["id"]) for p in world.posts(gid)]))
    stats = server.stats()
    assert client.stats.http_requests == stats["http_requests"]
    assert client.stats.api_calls == stats["api_calls"]
    assert (
        Counter(client.stats.calls_by_method)["wall.getComments"]
        == stats["by_method"]["wall.getComments"]["api_calls"]
    )


def test_walls_stream_in_chunks_without_holding_the_wall(emulator_factory, make_client):
    server = emulator_factory()
    world = server.world
    client = make_client(server)
    gids = readable_groups(world)
    got: dict[int, list[int]] = {g: [] for g in gids}
    finals = {}
    for result in fetch_walls(client, [WallRequest(-g) for g in gids], chunk_posts=40):
        assert len(result.posts) <= 40
        got[-result.owner_id].extend(p["id"] for p in result.posts)
        if result.final:
            finals[-result.owner_id] = result
    for g in gids:
        truth = [p["id"] for p in world.posts(g)]
        assert got[g] == truth
        assert finals[g].ids == set(truth) and finals[g].read == len(truth)
    assert any(len(world.posts(g)) > 40 for g in gids)
