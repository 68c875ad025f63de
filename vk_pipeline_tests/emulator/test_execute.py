"""execute: VKScript batches, partial failures, VK's limits on calls and response size."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from vk_pipeline.emulator import EmulatorServer, World, WorldSpec
from vk_pipeline_tests.fixtures.emulator import Api

RUNTIME = "Runtime error occurred during code invocation: "


def open_gid(world: World) -> int:
    return next(g for g in world.group_ids() if world.group_kind(g) == "open" and world.posts(g))


def call_js(method: str, params: dict[str, object]) -> str:
    return f"API.{method}({json.dumps(params, ensure_ascii=False)})"


def test_batch_equals_direct_calls(api: Api, emulator: EmulatorServer) -> None:
    w = emulator.world
    gid = open_gid(w)
    post = max(w.posts(gid), key=lambda p: p["comments"]["count"])
    calls = [
        ("wall.get", {"owner_id": -gid, "count": 3}),
        ("wall.get", {"owner_id": -gid, "count": 3, "offset": 3}),
        (
            "wall.getComments",
            {
                "owner_id": -gid,
                "post_id": post["id"],
                "count": 100,
                "thread_items_count": 10,
                "need_likes": 1,
                "preview_length": 0,
            },
        ),
        ("groups.getById", {"group_ids": [gid, w.group_ids()[1]], "fields": "members_count"}),
        ("utils.resolveScreenName", {"screen_name": "nobody_here"}),
    ]
    emulator.reset_stats()
    code = "return [" + ", ".join(call_js(m, p) for m, p in calls) + "];"
    body = api("execute", code=code)
    assert "execute_errors" not in body
    direct = [
        api.ok(m, **{k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in p.items()})
        for m, p in calls
    ]
    assert body["response"] == direct
    stats = emulator.stats()
    assert stats["by_method"]["execute"] == {"http_requests": 1, "api_calls": 0, "errors": {}}
    assert stats["by_method"]["wall.get"]["api_calls"] == 4  # 2 inside execute + 2 direct
    assert stats["by_method"]["wall.get"]["http_requests"] == 2
    assert stats["http_requests"] == 1 + len(calls)
    assert stats["api_calls"] == 2 * len(calls)


def test_vars_args_and_member_access(api: Api, emulator: EmulatorServer) -> None:
    gid = open_gid(emulator.world)
    code = (
        f"var w = API.wall.get({{owner_id: -{gid}, count: Args.n}});\n"
        "var ids = [w.items[0].id, w.items[1].id];  // comment\n"
        "/* block */ return {count: w.count, ids: ids, n: Args.n + 1, s: 'a' + \"b\"};"
    )
    got = api.ok("execute", code=code, n="2")
    truth = emulator.world.posts(gid)
    assert got == {"count": len(truth), "ids": [p["id"] for p in truth[:2]], "n": "21", "s": "ab"}


def test_failed_inner_call_gives_false_slot(api: Api, emulator: EmulatorServer) -> None:
    w = emulator.world
    gid = open_gid(w)
    closed = next(g for g in w.group_ids() if w.group_kind(g) == "closed")
    code = (
        f"return [API.wall.get({{owner_id: -{gid}, count: 1}}),"
        f" API.wall.get({{owner_id: -{closed}}}), API.groups.getById({{group_ids: 999999999}}),"
        " API.no.such()];"
    )
    body = api("execute", code=code)
    assert body["response"][0]["items"] == w.posts(gid)[:1]
    assert body["response"][1:] == [False, False, False]
    assert body["execute_errors"] == [
        {
            "method": "wall.get",
            "error_code": 15,
            "error_msg": "Access denied: this wall available only for community members",
        },
        {
            "method": "groups.getById",
            "error_code": 100,
            "error_msg": "One of the parameters specified was missing or invalid: group_ids is undefined",
        },
        {"method": "no.such", "error_code": 3, "error_msg": "Unknown method passed"},
    ]
    stats = emulator.stats()
    assert stats["by_method"]["wall.get"]["errors"] == {"15": 1}
    assert stats["by_method"]["execute"]["errors"] == {}


def test_call_limit(api: Api, emulator: EmulatorServer) -> None:
    gid = open_gid(emulator.world)
    one = f"API.groups.getById({{group_id: {gid}}})"
    ok = api.ok("execute", code="return [" + ",".join([one] * 25) + "];")
    assert len(ok) == 25
    emulator.reset_stats()
    err = api.err("execute", code="return [" + ",".join([one] * 26) + "];")
    assert (err["error_code"], err["error_msg"]) == (13, RUNTIME + "Too many API calls")
    # The limit is enforced at run time: the first 25 calls were made.
    assert emulator.stats()["by_method"]["groups.getById"]["api_calls"] == 25


def test_response_size_limit(
    emulator_factory: Callable[..., EmulatorServer], make_api: Callable[..., Api]
) -> None:
    server = emulator_factory(max_response_bytes=20_000)
    api = make_api(server)
    gid = max(
        (g for g in server.world.group_ids() if server.world.group_kind(g) == "open"),
        key=lambda g: len(server.world.posts(g)),
    )
    small = api("execute", code=f"return API.wall.get({{owner_id: -{gid}, count: 2}});")
    assert "response" in small
    err = api.err("execute", code=f"return API.wall.get({{owner_id: -{gid}, count: 100}});")
    assert (err["error_code"], err["error_msg"]) == (13, RUNTIME + "response size is too big")


@pytest.mark.parametrize(
    "code",
    [
        "return [API.wall.get({owner_id: -1});",
        "return API.wall.get({owner_id: });",
        "retrun 1;",
        "return x;",
        "return 'unterminated;",
        "if (1) { return 1; }",
        "return API.wall({});",
        "return 1 2;",
        "@@@",
    ],
)
def test_garbage_code(api: Api, code: str) -> None:
    err = api.err("execute", code=code)
    assert (err["error_code"], err["error_msg"]) == (12, "Unable to compile code")


def test_missing_code(api: Api) -> None:
    assert api.err("execute")["error_code"] == 100


def test_execute_is_fast_for_25_pages_of_comments() -> None:
    world = World(WorldSpec(seed=3, groups=3, posts=60, comments=12_000, special_groups=False))
    gid, post = max(
        ((g, p) for g in world.group_ids() for p in world.posts(g)),
        key=lambda t: t[1]["comments"]["count"],
    )
    calls = [
        call_js(
            "wall.getComments",
            {
                "owner_id": -gid,
                "post_id": post["id"],
                "count": 100,
                "offset": 100 * i,
                "thread_items_count": 10,
                "need_likes": 1,
                "preview_length": 0,
            },
        )
        for i in range(25)
    ]
    code = "return [" + ",".join(calls) + "];"
    with EmulatorServer(world, rate=1000) as server, Api(server) as api:
        api.ok("execute", code=code)  # warm up
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            resp = api.ok("execute", code=code)
            best = min(best, time.perf_counter() - t0)
    served = sum(len(r["items"]) for r in resp)
    assert served >= 1000
    assert best < 0.1, f"{best:.3f}s for {served} comments"
