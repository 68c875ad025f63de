"""Access and limits: tokens (error 5), community tokens (27), rate (6), daily quota (29)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from vk_pipeline.emulator import DEMO_TOKEN, EmulatorServer, World
from vk_pipeline_tests.fixtures.emulator import Api

Factory = Callable[..., EmulatorServer]
MakeApi = Callable[..., Api]


def open_gid(world: World) -> int:
    return next(g for g in world.group_ids() if world.group_kind(g) == "open" and world.posts(g))


def test_unknown_and_missing_token(emulator: EmulatorServer, make_api: MakeApi) -> None:
    gid = emulator.world.group_ids()[0]
    bad = make_api(emulator, token="not-a-token").raw("groups.getById", group_ids=gid)
    err = bad.json()["error"]
    assert (err["error_code"], err["error_msg"]) == (
        5,
        "User authorization failed: invalid access_token (4).",
    )
    assert "not-a-token" not in bad.text  # never echoed in request_params
    none = make_api(emulator, token=None)("groups.getById", group_ids=gid)["error"]
    assert (none["error_code"], none["error_msg"]) == (
        5,
        "User authorization failed: no access_token passed.",
    )
    stats = emulator.stats()
    assert stats["errors"] == {"5": 2}
    assert hashlib.sha256(b"not-a-token").hexdigest()[:8] in stats["by_token"]


def test_default_demo_token_and_bearer_header(small_world: World) -> None:
    gid = small_world.group_ids()[0]
    with EmulatorServer(small_world, rate=100) as server, Api(server) as api:
        assert server.token_count == 1
        assert api.ok("groups.getById", group_ids=gid)["groups"][0]["id"] == gid
        r = api.http.post(
            f"{server.base_url}/groups.getById",
            data={"group_ids": gid, "v": "5.199"},
            headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
        )
        assert r.json()["response"]["groups"][0]["id"] == gid
    with EmulatorServer(small_world, tokens=["x"]) as server, Api(server) as api:
        assert api.err("groups.getById", group_ids=gid)["error_code"] == 5


def test_group_token(emulator_factory: Factory, make_api: MakeApi) -> None:
    server = emulator_factory(tokens=["user-t"], group_tokens=["group-t"])
    api = make_api(server, token="group-t")
    gid = open_gid(server.world)
    msg = "Group authorization failed: method is unavailable with group auth."
    for method, params in (
        ("wall.get", {"owner_id": -gid}),
        ("wall.getComments", {"owner_id": -gid, "post_id": server.world.posts(gid)[0]["id"]}),
    ):
        err = api.err(method, **params)
        assert (err["error_code"], err["error_msg"]) == (27, msg)
    assert api.ok("groups.getById", group_ids=gid)["groups"][0]["id"] == gid
    body = api("execute", code=f"return [API.wall.get({{owner_id: -{gid}}}), 1];")
    assert body["response"] == [False, 1]
    assert body["execute_errors"][0]["error_code"] == 27
    assert make_api(server, token="user-t").ok("wall.get", owner_id=-gid, count=1)["items"]
    assert make_api(server, token=DEMO_TOKEN).err("wall.get")["error_code"] == 5


def test_rate_limit_rejects_and_rejections_do_not_consume(
    emulator_factory: Factory, make_api: MakeApi
) -> None:
    server = emulator_factory(rate=3)
    api = make_api(server)
    gid = server.world.group_ids()[0]
    t0 = time.monotonic()
    codes = [
        api("groups.getById", group_ids=gid).get("error", {}).get("error_code") for _ in range(6)
    ]
    assert time.monotonic() - t0 < 0.9
    assert codes[:3] == [None, None, None]
    assert codes[3:] == [6, 6, 6]
    err = api.err("groups.getById", group_ids=gid)
    assert err["error_msg"] == "Too many requests per second"
    # Rejected requests did not enter the window: 1 s after the first accepted one, one slot frees.
    time.sleep(max(0.0, t0 + 1.05 - time.monotonic()))
    assert "response" in api("groups.getById", group_ids=gid)
    stats = server.stats()
    assert stats["errors"] == {"6": 4}
    assert stats["http_requests"] == 8
    assert stats["api_calls"] == 4  # rejected requests never reached the method
    # Tokens have separate windows.
    other = emulator_factory(rate=1, tokens=["a", "b"])
    a, b = make_api(other, token="a"), make_api(other, token="b")
    assert "response" in a("groups.getById", group_ids=gid)
    assert "response" in b("groups.getById", group_ids=gid)
    assert a("groups.getById", group_ids=gid)["error"]["error_code"] == 6


def test_pacing_at_the_limit_is_never_rejected(
    emulator_factory: Factory, make_api: MakeApi
) -> None:
    server = emulator_factory(rate=10)
    api = make_api(server)
    gid = server.world.group_ids()[0]
    start = time.monotonic()
    for i in range(16):
        time.sleep(max(0.0, start + i * 0.105 - time.monotonic()))
        assert "response" in api("groups.getById", group_ids=gid), i
    assert server.stats()["errors"] == {}


def test_execute_is_one_request_for_the_rate_limit(
    emulator_factory: Factory, make_api: MakeApi
) -> None:
    server = emulator_factory(rate=2)
    api = make_api(server)
    gid = server.world.group_ids()[0]
    code = "return [" + ",".join([f"API.groups.getById({{group_id: {gid}}})"] * 20) + "];"
    assert len(api.ok("execute", code=code)) == 20
    assert "response" in api("groups.getById", group_ids=gid)
    assert api("groups.getById", group_ids=gid)["error"]["error_code"] == 6


def test_set_rate(emulator_factory: Factory, make_api: MakeApi) -> None:
    server = emulator_factory(rate=1)
    api = make_api(server)
    gid = server.world.group_ids()[0]
    server.set_rate(100)
    assert server.rate == 100
    assert all("response" in api("groups.getById", group_ids=gid) for _ in range(5))


def test_wall_get_daily_quota(emulator_factory: Factory, make_api: MakeApi) -> None:
    server = emulator_factory(wall_get_daily_quota=3, tokens=["a", "b"])
    api = make_api(server, token="a")
    gid = open_gid(server.world)
    assert "response" in api("wall.get", owner_id=-gid, count=1)
    body = api(
        "execute",
        code=f"return [API.wall.get({{owner_id: -{gid}, count: 1}}), API.wall.get({{owner_id: -{gid}, count: 1}}), API.wall.get({{owner_id: -{gid}, count: 1}})];",
    )
    assert body["response"][2] is False
    assert body["execute_errors"] == [
        {"method": "wall.get", "error_code": 29, "error_msg": "Rate limit reached"}
    ]
    err = api.err("wall.get", owner_id=-gid)
    assert (err["error_code"], err["error_msg"]) == (29, "Rate limit reached")
    # Other methods and other tokens are unaffected.
    post = server.world.posts(gid)[0]
    assert "response" in api("wall.getComments", owner_id=-gid, post_id=post["id"])
    assert "response" in make_api(server, token="b")("wall.get", owner_id=-gid, count=1)
    server.reset_quota()
    assert "response" in api("wall.get", owner_id=-gid, count=1)
    assert server.stats()["by_token"][hashlib.sha256(b"a").hexdigest()[:8]]["errors"] == {"29": 2}
