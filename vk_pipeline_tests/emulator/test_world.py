"""The synthetic world: determinism, required variety, `advance()` and its visibility over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vk_pipeline.emulator import EmulatorServer, World, WorldSpec
from vk_pipeline_tests.fixtures.emulator import Api

SPEC = WorldSpec(seed=21, groups=3, posts=150, comments=2500, special_groups=True)


def snapshot(world: World) -> dict[str, Any]:
    out: dict[str, Any] = {"now": world.now}
    for gid in world.group_ids():
        posts = world.posts(gid)
        out[f"g{gid}"] = world.group(gid)
        out[f"p{gid}"] = posts
        out[f"c{gid}"] = {p["id"]: world.comments(gid, p["id"]) for p in posts}
    return out


def all_comments(world: World) -> list[tuple[int, dict[str, Any], list[dict[str, Any]]]]:
    return [(g, p, world.comments(g, p["id"])) for g in world.group_ids() for p in world.posts(g)]


def test_same_seed_same_world_other_seed_other_world() -> None:
    a, b = World(SPEC), World(SPEC)
    assert snapshot(a) == snapshot(b)
    c = World(WorldSpec(seed=22, groups=3, posts=150, comments=2500))
    assert snapshot(c) != snapshot(a)


def test_big_world_has_the_requested_size() -> None:
    world = World(WorldSpec(seed=1, groups=20, posts=5000, comments=150_000, special_groups=True))
    sizes = world.stats()
    assert sizes["posts"] == 5000
    assert 140_000 <= sizes["comments"] <= 150_000  # a few were deleted at generation
    assert sizes["groups"] == 25


def test_variety(small_world: World) -> None:
    w = small_world
    kinds = [w.group_kind(g) for g in w.group_ids()]
    assert sorted(set(kinds)) == sorted(
        ["open", "closed", "private", "banned", "deleted", "wall_off"]
    )
    assert all(g > 0 for g in w.group_ids())
    names = [w.group(g)["screen_name"] for g in w.group_ids()]
    assert len(set(names)) == len(names)
    assert any(n.startswith("club") for n in names) and any(not n.startswith("club") for n in names)
    posts = [p for g in w.group_ids() for p in w.posts(g)]
    counts = sorted(len(w.posts(g)) for g in w.group_ids() if w.group_kind(g) == "open")
    assert counts[0] == 0 and counts[-1] > 3 * (sum(counts) / len(counts)) / 2  # heavy tail
    assert w.now - min(p["date"] for p in posts) > 600 * 86_400  # ~2 years of history
    assert max(p["date"] for p in posts) <= w.now
    assert any(p.get("edited") for p in posts)
    assert any(p.get("copy_history") for p in posts)
    assert any(p.get("signer_id") for p in posts)
    assert any(p["from_id"] > 0 for p in posts)  # posts by users on open walls
    assert "views" not in min(posts, key=lambda p: p["date"])  # very old posts have no views
    attachment_types = {a["type"] for p in posts for a in p["attachments"]}
    assert {"photo", "link", "video"} <= attachment_types
    closed = [p for p in posts if p["comments"]["can_post"] == 0]
    assert closed and all(p["comments"]["count"] == 0 for p in closed)
    comments = all_comments(w)
    per_post = sorted(len(cs) for _, _, cs in comments)
    assert per_post[len(per_post) // 3] == 0 and per_post[-1] > 300
    flat = [c for _, _, cs in comments for c in cs]
    replies = [c for c in flat if c.get("parents_stack")]
    assert 0.3 < len(replies) / len(flat) < 0.5
    threads = [c["thread"]["count"] for c in flat if "thread" in c]
    assert max(threads) > 100 and sum(1 for t in threads if t > 10) >= 3
    assert any(c["from_id"] == -g for g, _, cs in comments for c in cs)
    stubs = [c for c in flat if c.get("deleted")]
    assert stubs and all(c["text"] == "" and c["thread"]["count"] > 0 for c in stubs)
    for _, p, cs in comments:
        ids = [c["id"] for c in cs]
        assert ids == sorted(ids) and all(c["date"] >= p["date"] for c in cs)
        assert p["comments"]["count"] == len(cs)  # stubs of deleted comments count too
        # Posts and comments share the wall's id counter, so they never collide.
        assert p["id"] not in ids
    pinned = [
        (g, w.posts(g)) for g in w.group_ids() if w.posts(g) and w.posts(g)[0].get("is_pinned")
    ]
    assert pinned
    for g, ps in pinned:
        assert ps[0]["date"] < ps[1]["date"]
        assert w.group(g)["fixed_post"] == ps[0]["id"]
    assert w.post_ids_with_comments_closed(pinned[0][0]) == {
        p["id"] for p in pinned[0][1] if p["comments"]["can_post"] == 0
    }


def test_truth_is_a_deep_copy(small_world: World) -> None:
    gid = next(g for g in small_world.group_ids() if small_world.posts(g))
    first = small_world.posts(gid)
    first[0]["text"] = "mutated"
    first[0]["attachments"].append({"type": "x"})
    assert small_world.posts(gid)[0]["text"] != "mutated"


def test_advance_is_deterministic() -> None:
    a, b = World(SPEC), World(SPEC)
    kwargs = {"days": 2, "new_posts": 0.1, "commented_posts": 0.2, "edits": 0.05, "deletions": 0.05}
    sa, sb = a.advance(**kwargs), b.advance(**kwargs)
    assert sa == sb
    assert snapshot(a) == snapshot(b)
    assert a.advance() == b.advance()
    assert snapshot(a) == snapshot(b)


def test_advance_effects() -> None:
    world = World(SPEC)
    before = {
        (g, p["id"]): (p, world.comments(g, p["id"]))
        for g in world.group_ids()
        for p in world.posts(g)
    }
    now = world.now
    s = world.advance(days=1.5, new_posts=0.1, commented_posts=0.2, edits=0.05, deletions=0.05)
    assert world.now == now + int(1.5 * 86_400) == s["now"]
    after = {
        (g, p["id"]): (p, world.comments(g, p["id"]))
        for g in world.group_ids()
        for p in world.posts(g)
    }
    new_keys = set(after) - set(before)
    assert new_keys == set(s["new_post_keys"]) and len(new_keys) == s["new_posts"] > 0
    assert all(now < after[k][0]["date"] <= world.now for k in new_keys)
    assert set(before) - set(after) == set(s["deleted_post_keys"]) and s["deleted_posts"] > 0
    assert s["new_comments"] > 0 and s["new_replies"] > 0
    old_ids = {c["id"] for _, cs in before.values() for c in cs}
    new_comments = [c for k in after for c in after[k][1] if c["id"] not in old_ids]
    assert len(new_comments) >= s["new_comments"] - s["deleted_comments"]
    assert all(now < c["date"] <= world.now for c in new_comments)
    # New replies also land in old threads.
    assert any(c.get("parents_stack") and c["parents_stack"][0] in old_ids for c in new_comments)
    edited_posts = [k for k in set(before) & set(after) if after[k][0].get("edited", 0) > now]
    assert len(edited_posts) == s["edited_posts"] > 0
    assert all(after[k][0]["text"] != before[k][0]["text"] for k in edited_posts)
    # Comment ids are unique per wall, so they are keyed with the group.
    before_texts = {(k[0], c["id"]): c["text"] for k, (_, cs) in before.items() for c in cs}
    edited_comments = [
        c
        for k in after
        for c in after[k][1]
        if before_texts.get((k[0], c["id"]), c["text"]) != c["text"] and not c.get("deleted")
    ]
    assert 0 < len(edited_comments) <= s["edited_comments"]  # some were deleted after
    # VK's comment object has no `edited` field: an edit shows only in the text.
    assert not any("edited" in c for k in after for c in after[k][1])
    # Deleted comments: those with live replies turn into stubs, the others are gone.
    new_stubs = {
        c["id"] for k in set(before) & set(after) for c in after[k][1] if c.get("deleted")
    } - {c["id"] for _, cs in before.values() for c in cs if c.get("deleted")}
    assert len(new_stubs) > 0
    gone = old_ids - {c["id"] for k in after for c in after[k][1]}
    assert len(gone) > 0
    assert {k for k in after if k in before and after[k] != before[k]} <= set(
        map(tuple, s["affected"])
    )
    for k in set(before) & set(after):
        p, cs = after[k]
        assert p["comments"]["count"] == len(cs)  # stubs of deleted comments count too


def test_advance_is_visible_over_http(
    emulator_factory: Callable[..., EmulatorServer], make_api: Callable[..., Api]
) -> None:
    world = World(SPEC)
    server = emulator_factory(world=world)
    api = make_api(server)
    s = server.advance(days=1, new_posts=0.2, commented_posts=0.3, edits=0.05, deletions=0.05)
    gid, pid = s["deleted_post_keys"][0]
    err = api.err("wall.getComments", owner_id=-gid, post_id=pid)
    assert (err["error_code"], err["error_msg"]) == (15, "Access denied: post was deleted")
    for g in world.group_ids():
        if world.posts(g):
            resp = api.ok("wall.get", owner_id=-g, count=100)
            assert resp["items"] == world.posts(g)[:100]
    gid, pid = s["new_post_keys"][0]
    assert pid in {p["id"] for p in api.ok("wall.get", owner_id=-gid, count=100)["items"]}
