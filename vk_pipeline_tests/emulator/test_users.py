"""users.get over HTTP and the world's change log of edits, deletions and restores."""

from __future__ import annotations

from vk_pipeline.emulator import World, WorldSpec
from vk_pipeline_tests.fixtures.emulator import Api


def test_users_get_limits_and_unknown_ids(api: Api) -> None:
    body = api("users.get", user_ids="1,id2,1,durov_not_resolved,-5")
    assert [u["id"] for u in body["response"]] == [1, 2]
    assert "sex" not in body["response"][0]  # only the fields asked for
    too_many = api("users.get", user_ids=",".join(str(i) for i in range(1, 1002)))
    assert too_many["error"]["error_code"] == 100
    assert api("users.get", user_ids="x,-1")["error"]["error_code"] == 113


def _pack(calls: int) -> str:
    fields = "sex,bdate,city,country,screen_name"
    parts = [
        f'API.users.get({{"user_ids": "{",".join(str(i) for i in range(k * 1000 + 1, k * 1000 + 1001))}",'
        f' "fields": "{fields}"}})'
        for k in range(calls)
    ]
    return "return [" + ",".join(parts) + "];"


def test_users_get_packs_hit_the_5_mb_response_limit(api: Api) -> None:
    # About 210 bytes a profile with these fields: 25 x 1,000 profiles are more than VK's 5 MB
    # execute response, 20 x 1,000 fit.
    assert api("execute", code=_pack(25))["error"]["error_code"] == 13
    body = api("execute", code=_pack(20))
    assert "error" not in body
    assert sum(len(r) for r in body["response"]) == 20_000


def test_a_deactivated_user_loses_the_name(api: Api) -> None:
    world = api.server.world
    before = api("users.get", user_ids="7")["response"][0]
    world.deactivate_user(7)
    after = api("users.get", user_ids="7")["response"][0]
    assert before["first_name"] != "DELETED"
    assert (after["first_name"], after["deactivated"]) == ("DELETED", "deleted")


def test_change_log_records_edits_deletions_and_restores() -> None:
    world = World(WorldSpec(seed=3, groups=4, posts=200, comments=3000, special_groups=False))
    world.advance(days=1, edits=0.05, deletions=0.05)
    summary = world.advance(days=1, edits=0.05, deletions=0.05, restores=0.5)
    kinds = {(e["object"], e["kind"]) for e in world.change_log}
    assert {("comment", "edited"), ("comment", "deleted"), ("comment", "restored")} <= kinds
    assert summary["restored_comments"] > 0
    edited = next(e for e in world.change_log if e["kind"] == "edited" and e["object"] == "comment")
    gid = -edited["owner_id"]
    live = {c["id"]: c for c in world.comments(gid, edited["post_id"])}
    # The log holds the text before the edit; the world serves the text after it.
    if edited["id"] in live:
        assert live[edited["id"]]["text"] != edited["text_before"]


def test_growth_moves_counters_towards_their_peak_and_is_opt_in() -> None:
    spec = WorldSpec(seed=3, groups=3, posts=100, comments=500, special_groups=False)
    a, b, c = World(spec), World(spec), World(spec)
    a.advance(days=0.25, new_posts=0.3)
    c.advance(days=0.25, new_posts=0.3, restores=0.0, growth=0.0)
    b.advance(days=0.25, new_posts=0.3, growth=1)
    # Off, the options leave the world exactly as it was before they existed.
    assert a.posts(a.group_ids()[0]) == c.posts(c.group_ids()[0])
    gid = b.group_ids()[0]
    young = [p for p in b.posts(gid) if b.now - p["date"] < 6 * 3600]
    views_then = {p["id"]: p.get("views", {}).get("count") for p in young}
    b.advance(days=1, new_posts=0, commented_posts=0, edits=0, deletions=0, growth=1)
    views_now = {p["id"]: p.get("views", {}).get("count") for p in b.posts(gid)}
    grown = [pid for pid, v in views_then.items() if v is not None and views_now[pid] > v]
    assert young and grown
