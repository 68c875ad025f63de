"""execute: VKScript batches, partial failures, VK's limits on calls and response size."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from vk_pipeline.emulator import EmulatorServer, World
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
        "for (;;) { return 1; }",
        "if (1) { return 1; ",
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


def test_25_pages_of_comments_in_one_execute(api: Api, emulator: EmulatorServer) -> None:
    """The pack our client sends at most: 25 full comment pages come back complete and equal
    to the same pages asked for directly (how fast is a benchmark question, not a test's)."""
    world = emulator.world
    gid, post = max(
        ((g, p) for g in world.group_ids() for p in world.posts(g)),
        key=lambda t: t[1]["comments"]["count"],
    )
    page = {
        "owner_id": -gid,
        "post_id": post["id"],
        "count": 100,
        "thread_items_count": 10,
        "need_likes": 1,
        "preview_length": 0,
    }
    code = (
        "return ["
        + ",".join(call_js("wall.getComments", {**page, "offset": 100 * i}) for i in range(25))
        + "];"
    )
    got = api.ok("execute", code=code)
    assert len(got) == 25
    top = [c for c in world.comments(gid, post["id"]) if not c["parents_stack"]]
    assert [c["id"] for r in got for c in r["items"]] == [c["id"] for c in top[:2500]]
    assert got[3] == api.ok("wall.getComments", **page, offset=300)


def test_paging_loop_in_one_execute(api: Api, emulator: EmulatorServer) -> None:
    """A client-side loop (while/if/slice/array +) pages a whole wall in one request."""
    world = emulator.world
    gid = max(
        (g for g in world.group_ids() if world.group_kind(g) == "open"),
        key=lambda g: len(world.posts(g)),
    )
    code = f"""
    var offset = 0, items = [], page, total = 1;
    while (offset < total && offset < 2500) {{
        page = API.wall.get({{owner_id: -{gid}, count: 100, offset: offset}});
        if (!page) {{ return {{error: true}}; }}
        total = page.count;
        items = items + page.items.slice(0);
        offset = offset + 100;
    }}
    return {{count: total, ids: items@.id, calls: offset / 100}};
    """
    emulator.reset_stats()
    got = api.ok("execute", code=code)
    truth = world.posts(gid)
    assert got["count"] == len(truth) and got["ids"] == [p["id"] for p in truth[:2500]]
    stats = emulator.stats()
    assert stats["http_requests"] == 1
    assert stats["by_method"]["wall.get"]["api_calls"] == got["calls"] == -(-len(truth) // 100)


def test_runaway_loop_is_a_runtime_error(api: Api, emulator: EmulatorServer) -> None:
    err = api.err("execute", code="var i = 0; while (true) { i = i + 1; }")
    assert (err["error_code"], err["error_msg"]) == (13, RUNTIME + "Too many operations")
    err = api.err("execute", code="return 'a' - 1;")
    assert (err["error_code"], err["error_msg"]) == (13, RUNTIME + "Numeric value is expected")
