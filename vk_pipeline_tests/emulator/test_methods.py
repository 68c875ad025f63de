"""Method semantics over real HTTP: shapes, paging against ground truth, per-object errors."""

from __future__ import annotations

from typing import Any

from vk_pipeline.emulator import World
from vk_pipeline_tests.fixtures.emulator import Api

PARAM = "One of the parameters specified was missing or invalid: "


def open_groups(world: World) -> list[int]:
    return [g for g in world.group_ids() if world.group_kind(g) == "open"]


def kind_gid(world: World, kind: str) -> int:
    return next(g for g in world.group_ids() if world.group_kind(g) == kind)


def biggest_post(world: World) -> tuple[int, dict[str, Any]]:
    return max(
        ((g, p) for g in open_groups(world) for p in world.posts(g)),
        key=lambda t: t[1]["comments"]["count"],
    )


# ---------------------------------------------------------------------- groups.getById


def test_groups_get_by_id_versions_and_fields(api: Api) -> None:
    w = api.server.world
    ids = w.group_ids()[:3]
    new = api.ok("groups.getById", group_ids=",".join(map(str, ids)), fields="members_count,wall")
    assert set(new) == {"groups", "profiles"} and new["profiles"] == []
    assert [g["id"] for g in new["groups"]] == ids
    for g in new["groups"]:
        assert {"members_count", "wall"} <= set(g)
        assert "description" not in g and "counters" not in g
        assert g["members_count"] == w.group(g["id"])["members_count"]
    old = api.ok("groups.getById", group_ids=",".join(map(str, ids)), v="5.131")
    assert isinstance(old, list) and [g["id"] for g in old] == ids
    assert "members_count" not in old[0]
    # All supported fields = the truth object.
    fields = "activity,age_limits,can_message,can_post,can_see_all_posts,counters,cover,description,fixed_post,has_photo,is_favorite,members_count,site,status,verified,wall"
    full = api.ok("groups.getById", group_id=ids[0], fields=fields)["groups"][0]
    assert full == w.group(ids[0])


def test_groups_get_by_id_names_unknown_and_limits(api: Api) -> None:
    w = api.server.world
    gid = w.group_ids()[0]
    name = w.group(gid)["screen_name"]
    got = api.ok("groups.getById", group_ids=f"{name},club{gid},999999999,no_such_name_x")
    assert [g["id"] for g in got["groups"]] == [gid]  # unknowns dropped, duplicates merged
    err = api.err("groups.getById", group_ids="999999999,no_such_name_x")
    assert (err["error_code"], err["error_msg"]) == (100, PARAM + "group_ids is undefined")
    assert api.err("groups.getById")["error_code"] == 100
    assert api.err("groups.getById", group_ids=",".join(["1"] * 501))["error_code"] == 100
    assert api.ok("groups.getById", group_ids=",".join([str(gid)] * 500))["groups"][0]["id"] == gid


def test_groups_get_by_id_deactivated(api: Api) -> None:
    w = api.server.world
    for kind in ("banned", "deleted"):
        gid = kind_gid(w, kind)
        g = api.ok("groups.getById", group_ids=gid, fields="members_count,wall")["groups"][0]
        assert g["deactivated"] == kind
        assert "members_count" not in g
    closed = api.ok("groups.getById", group_ids=kind_gid(w, "private"))["groups"][0]
    assert closed["is_closed"] == 2
    wall_off = api.ok("groups.getById", group_ids=kind_gid(w, "wall_off"), fields="wall")
    assert wall_off["groups"][0]["wall"] == 0


def test_resolve_screen_name(api: Api) -> None:
    w = api.server.world
    gid = w.group_ids()[1]
    g = w.group(gid)
    assert api.ok("utils.resolveScreenName", screen_name=g["screen_name"]) == {
        "object_id": gid,
        "type": g["type"],
    }
    assert api.ok("utils.resolveScreenName", screen_name=f"public{gid}")["object_id"] == gid
    assert api.ok("utils.resolveScreenName", screen_name="definitely_not_here_42") == []
    assert api.err("utils.resolveScreenName")["error_code"] == 100


# ---------------------------------------------------------------------- wall.get


def page_wall(api: Api, gid: int, count: int = 100, **extra: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        resp = api.ok("wall.get", owner_id=-gid, offset=offset, count=count, **extra)
        items += resp["items"]
        offset += count
        if offset >= resp["count"]:
            return items


def test_wall_get_paging_equals_truth_pinned_first(api: Api) -> None:
    w = api.server.world
    pinned_seen = False
    for gid in open_groups(w):
        truth = w.posts(gid)
        assert page_wall(api, gid) == truth
        assert page_wall(api, gid, count=37) == truth
        if truth and truth[0].get("is_pinned"):
            pinned_seen = True
            assert truth[0]["date"] < truth[1]["date"]  # pinned is older, still first
            assert sum(1 for p in truth if p.get("is_pinned")) == 1
            second = api.ok("wall.get", owner_id=-gid, offset=1, count=1)["items"][0]
            assert second == truth[1]
    assert pinned_seen


def test_wall_get_params(api: Api) -> None:
    w = api.server.world
    gid = max(open_groups(w), key=lambda g: len(w.posts(g)))
    truth = w.posts(gid)
    assert len(truth) > 100
    resp = api.ok("wall.get", owner_id=-gid, count=500)
    assert len(resp["items"]) == 100 and resp["count"] == len(truth)  # clamped, not an error
    assert api.ok("wall.get", owner_id=-gid, offset=10**6)["items"] == []
    assert len(api.ok("wall.get", owner_id=-gid)["items"]) == 20  # VK's default count
    name = w.group(gid)["screen_name"]
    assert api.ok("wall.get", domain=name, count=5)["items"] == truth[:5]
    own = api.ok("wall.get", owner_id=-gid, filter="owner", count=100)
    others = api.ok("wall.get", owner_id=-gid, filter="others", count=100)
    assert own["count"] + others["count"] == len(truth)
    assert all(p["from_id"] == -gid for p in own["items"])
    assert all(p["from_id"] != -gid for p in others["items"])
    assert api.ok("wall.get", owner_id=-gid, filter="postponed")["count"] == 0
    ext = api.ok("wall.get", owner_id=-gid, count=50, extended=1)
    owners = {p["from_id"] for p in ext["items"]} | {p.get("signer_id", 0) for p in ext["items"]}
    assert {u["id"] for u in ext["profiles"]} == {o for o in owners if o > 0}
    assert gid in {g["id"] for g in ext["groups"]}
    assert (
        api.err("wall.get", owner_id=-gid, count="abc")["error_msg"] == PARAM + "count not integer"
    )


def test_wall_get_per_object_errors(api: Api) -> None:
    w = api.server.world
    expected = {
        "closed": (15, "Access denied: this wall available only for community members"),
        "private": (15, "Access denied: this wall available only for community members"),
        "banned": (15, "Access denied: group is blocked"),
        "deleted": (15, "Access denied: group is deleted"),
        "wall_off": (15, "Access denied: wall is disabled"),
    }
    for kind, (code, msg) in expected.items():
        gid = kind_gid(w, kind)
        assert w.posts(gid) == []
        err = api.err("wall.get", owner_id=-gid)
        assert (err["error_code"], err["error_msg"]) == (code, msg), kind
    err = api.err("wall.get", owner_id=-999_999_999)
    assert (err["error_code"], err["error_msg"]) == (100, PARAM + "owner_id is undefined")
    assert api.err("wall.get", owner_id=5)["error_code"] == 18  # no such user
    assert api.err("wall.get", domain="nobody_has_this_name")["error_code"] == 100


def test_wall_get_by_id(api: Api) -> None:
    w = api.server.world
    gid, other = open_groups(w)[:2]
    truth = w.posts(gid)[:3] + w.posts(other)[:1]
    keys = [f"{p['owner_id']}_{p['id']}" for p in truth]
    # Unreadable or unknown posts are left out, in any position; the rest keep request order.
    closed = kind_gid(w, "closed")
    hidden = [f"-{closed}_1", f"-{gid}_999999999", "-1_1", "5_1"]
    got = api.ok("wall.getById", posts=",".join([hidden[0], *keys[:2], *hidden[1:], *keys[2:]]))
    assert got == {"items": truth}
    ext = api.ok("wall.getById", posts=keys[0], extended=1)
    assert ext["items"] == truth[:1]
    assert -gid in [-g["id"] for g in ext["groups"]]
    for bad in ("", "abc", f"-{gid}", f"-{gid}_x"):
        err = api.err("wall.getById", posts=bad)
        assert err["error_code"] == 100, bad


def test_user_walls(api: Api) -> None:
    w = api.server.world
    users = sorted(
        {
            c["from_id"]
            for g in open_groups(w)[:1]
            for p in w.posts(g)[:50]
            for c in w.comments(g, p["id"])
            if c["from_id"] > 0
        }
    )
    private = next(u for u in users if w.user_is_private(u))
    public = next(u for u in users if not w.user_is_private(u))
    assert api.err("wall.get", owner_id=private)["error_code"] == 30
    assert api.ok("wall.get", owner_id=public) == {"count": 0, "items": []}
    assert api.ok("utils.resolveScreenName", screen_name=f"id{public}") == {
        "object_id": public,
        "type": "user",
    }


# ---------------------------------------------------------------------- wall.getComments


def fetch_all_comments(api: Api, gid: int, post_id: int) -> list[dict[str, Any]]:
    """Top level with 10 inline replies, then comment_id paging for longer threads."""
    base = {"owner_id": -gid, "post_id": post_id, "need_likes": 1, "preview_length": 0}
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        resp = api.ok("wall.getComments", **base, offset=offset, count=100, thread_items_count=10)
        for top in resp["items"]:
            thread = top["thread"]
            out.append({k: v for k, v in top.items() if k != "thread"} | {"_thread": thread})
            replies = thread["items"]
            if thread["count"] > len(replies):
                replies = []
                t_off = 0
                while t_off < thread["count"]:
                    page = api.ok(
                        "wall.getComments", **base, comment_id=top["id"], offset=t_off, count=100
                    )
                    assert page["current_level_count"] == page["count"] == thread["count"]
                    assert page["items"], "thread shorter than announced"
                    replies += page["items"]
                    t_off += 100
            out += replies
        offset += 100
        if offset >= resp["current_level_count"]:
            return out


def strip_thread(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.items() if k not in ("thread", "_thread")} for c in items]


def test_get_comments_paging_equals_truth(api: Api) -> None:
    w = api.server.world
    gid, post = biggest_post(w)
    long_thread = False
    posts = [(gid, post)] + [(g, p) for g in open_groups(w) for p in w.posts(g)[:15]]
    for g, p in posts:
        if p["comments"]["can_post"] == 0:
            continue
        truth = w.comments(g, p["id"])
        got = fetch_all_comments(api, g, p["id"])
        assert sorted(strip_thread(got), key=lambda c: c["id"]) == strip_thread(truth)
        truth_threads = {c["id"]: c["thread"]["count"] for c in truth if "thread" in c}
        for c in got:
            if "_thread" in c:
                assert c["_thread"]["count"] == truth_threads[c["id"]]
                long_thread |= c["_thread"]["count"] > 100
        # comments.count shows every visible item, stubs of deleted comments included.
        assert p["comments"]["count"] == len(truth)
    assert long_thread


def test_get_comments_counts_and_options(api: Api) -> None:
    w = api.server.world
    gid, post = biggest_post(w)
    base = {"owner_id": -gid, "post_id": post["id"]}
    truth = w.comments(gid, post["id"])
    top_truth = [c for c in truth if not c.get("parents_stack")]
    resp = api.ok("wall.getComments", **base)
    assert resp["count"] == post["comments"]["count"]  # all comments incl. replies
    assert resp["current_level_count"] == len(top_truth)
    assert len(resp["items"]) == 10  # VK's default count
    assert {"can_post", "show_reply_button", "groups_can_post"} <= set(resp)
    assert "likes" not in resp["items"][0]
    assert all(len(c["text"]) <= 90 for c in resp["items"])  # default preview_length=90
    assert all(c["thread"]["items"] == [] for c in resp["items"])  # thread_items_count=0
    full = api.ok("wall.getComments", **base, count=100, preview_length=0, need_likes=1)
    assert all("likes" in c for c in full["items"] if not c.get("deleted"))
    desc = api.ok(
        "wall.getComments", **base, count=100, sort="desc", preview_length=0, need_likes=1
    )
    tail = [c["id"] for c in top_truth][-100:][::-1]
    assert [c["id"] for c in desc["items"]] == tail
    many = api.ok("wall.getComments", **base, thread_items_count=50, count=100)
    assert max(len(c["thread"]["items"]) for c in many["items"]) == 10  # clamped to 10
    start = top_truth[5]["id"]
    from_start = api.ok("wall.getComments", **base, start_comment_id=start, count=3)
    assert [c["id"] for c in from_start["items"]] == [c["id"] for c in top_truth[5:8]]
    big = api.ok("wall.getComments", **base, count=1000)
    assert len(big["items"]) == 100
    reply = next(c for c in truth if c.get("parents_stack"))
    err = api.err("wall.getComments", **base, comment_id=reply["id"])
    assert err["error_code"] == 100
    assert reply["reply_to_comment"] and reply["reply_to_user"]
    assert reply["parents_stack"][0] in {c["id"] for c in top_truth}


def test_get_comments_errors(api: Api) -> None:
    w = api.server.world
    closed_post = next(
        (g, pid) for g in open_groups(w) for pid in sorted(w.post_ids_with_comments_closed(g))
    )
    err = api.err("wall.getComments", owner_id=-closed_post[0], post_id=closed_post[1])
    assert (err["error_code"], err["error_msg"]) == (212, "Access to post comments denied")
    assert w.comments(*closed_post) == []
    gid = open_groups(w)[0]
    err = api.err("wall.getComments", owner_id=-gid, post_id=10**8)
    assert (err["error_code"], err["error_msg"]) == (100, PARAM + "post_id is undefined")
    assert api.err("wall.getComments", owner_id=-gid)["error_code"] == 100
    err = api.err("wall.getComments", owner_id=-kind_gid(w, "closed"), post_id=1)
    assert err["error_code"] == 15


def test_unknown_method_and_case_sensitivity(api: Api) -> None:
    assert api.err("WALL.GET")["error_code"] == 3  # method names are case-sensitive
    assert api.err("wall.nope")["error_msg"] == "Unknown method passed"
