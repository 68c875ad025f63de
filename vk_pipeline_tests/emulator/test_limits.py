"""Access and limits: tokens (error 5), community tokens (27), rate (6), daily quota (29)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

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


class FakeClock:
    """The server's clock, moved by hand, so rate windows are tested without real time."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def codes(api: Api, gid: int, n: int) -> list[int | None]:
    return [
        api("groups.getById", group_ids=gid).get("error", {}).get("error_code") for _ in range(n)
    ]


def test_rate_limit_rejects_and_rejections_do_not_consume(
    emulator_factory: Factory, make_api: MakeApi
) -> None:
    clock = FakeClock()
    server = emulator_factory(rate=3, clock=clock)
    api = make_api(server)
    gid = server.world.group_ids()[0]
    assert codes(api, gid, 6) == [None, None, None, 6, 6, 6]
    clock.t += 0.999
    err = api.err("groups.getById", group_ids=gid)
    assert (err["error_code"], err["error_msg"]) == (6, "Too many requests per second")
    # Rejected requests did not enter the window: one second after the accepted ones, all
    # three slots are free again.
    clock.t += 0.001
    assert codes(api, gid, 4) == [None, None, None, 6]
    stats = server.stats()
    assert stats["errors"] == {"6": 5}
    assert stats["rate_limited"] == 5
    assert stats["http_requests"] == 11
    assert stats["api_calls"] == 6  # rejected requests never reached the method
    # Tokens have separate windows.
    other = emulator_factory(rate=1, tokens=["a", "b"], clock=clock)
    a, b = make_api(other, token="a"), make_api(other, token="b")
    assert "response" in a("groups.getById", group_ids=gid)
    assert "response" in b("groups.getById", group_ids=gid)
    assert a("groups.getById", group_ids=gid)["error"]["error_code"] == 6


def test_pacing_at_the_limit_is_never_rejected(
    emulator_factory: Factory, make_api: MakeApi
) -> None:
    clock = FakeClock()
    server = emulator_factory(rate=10, clock=clock)
    api = make_api(server)
    gid = server.world.group_ids()[0]
    start = clock.t
    for i in range(30):
        clock.t = start + i * 0.1
        assert "response" in api("groups.getById", group_ids=gid), i
    # A little faster than the limit is rejected within the first second.
    clock.t += 10
    start = clock.t
    got = []
    for i in range(12):
        clock.t = start + i * 0.09
        got.append(api("groups.getById", group_ids=gid).get("error", {}).get("error_code"))
    assert got[:10] == [None] * 10 and 6 in got[10:]
    assert server.stats()["errors"] == {"6": got.count(6)}


def test_execute_is_one_request_for_the_rate_limit(
    emulator_factory: Factory, make_api: MakeApi
) -> None:
    server = emulator_factory(rate=2, clock=FakeClock())
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


def key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:8]


def test_per_token_rates(emulator_factory: Factory, make_api: MakeApi) -> None:
    clock = FakeClock()
    server = emulator_factory(
        rate=2, tokens=["slow", "fast", "plain"], token_rates={"fast": 5}, clock=clock
    )
    gid = server.world.group_ids()[0]
    fast, slow, plain = (make_api(server, token=t) for t in ("fast", "slow", "plain"))
    assert codes(fast, gid, 6) == [None] * 5 + [6]
    assert codes(slow, gid, 3) == [None, None, 6]
    server.set_token_rate("slow", 1)
    clock.t += 1
    assert codes(slow, gid, 2) == [None, 6]
    assert codes(plain, gid, 3) == [None, None, 6]  # the server's rate
    server.set_token_rate("fast", None)
    assert server.token_rate("fast") == server.token_rate(key=key("plain")) == 2
    by_token = server.stats()["by_token"]
    assert {k: by_token[key(k)]["errors"].get("6", 0) for k in ("fast", "slow", "plain")} == {
        "fast": 1,
        "slow": 2,
        "plain": 1,
    }
    with pytest.raises(ValueError, match=key("nope")) as info:
        server.set_token_rate("nope", 3)
    assert "nope" not in str(info.value)  # tokens never appear in errors, only their key


def test_accepted_span_per_token(emulator_factory: Factory, make_api: MakeApi) -> None:
    clock = FakeClock(500.0)
    server = emulator_factory(rate=2, tokens=["a", "b"], clock=clock)
    gid = server.world.group_ids()[0]
    a, b = make_api(server, token="a"), make_api(server, token="b")
    assert codes(a, gid, 3) == [None, None, 6]  # the rejected one is not "accepted"
    clock.t = 501.5
    assert codes(b, gid, 1) == [None]
    clock.t = 503.25
    assert codes(a, gid, 1) == [None]
    stats = server.stats()
    assert (stats["accepted"], stats["first_accepted_at"], stats["last_accepted_at"]) == (
        4,
        500.0,
        503.25,
    )
    ta, tb = stats["by_token"][key("a")], stats["by_token"][key("b")]
    assert (ta["accepted"], ta["first_accepted_at"], ta["last_accepted_at"]) == (3, 500.0, 503.25)
    assert (tb["accepted"], tb["first_accepted_at"], tb["last_accepted_at"]) == (1, 501.5, 501.5)
    assert ta["rate_limited"] == 1 and tb["rate_limited"] == 0
    server.reset_stats()
    assert server.stats()["first_accepted_at"] is None and server.stats()["accepted"] == 0


def test_per_token_quotas_and_exhaustion(emulator_factory: Factory, make_api: MakeApi) -> None:
    clock = FakeClock()
    server = emulator_factory(
        tokens=["a", "b"],
        wall_get_daily_quota=10,
        daily_quotas={"wall.getComments": 2},
        token_quotas={"b": {"wall.get": 1}},
        clock=clock,
    )
    gid = open_gid(server.world)
    post = next(p for p in server.world.posts(gid) if p["comments"]["count"])
    a, b = make_api(server, token="a"), make_api(server, token="b")
    assert "response" in b("wall.get", owner_id=-gid, count=1)
    assert b.err("wall.get", owner_id=-gid, count=1)["error_code"] == 29
    assert "response" in a("wall.get", owner_id=-gid, count=1)
    comments = [a("wall.getComments", owner_id=-gid, post_id=post["id"]) for _ in range(3)]
    assert ["error" in c for c in comments] == [False, False, True]
    server.exhaust_quota("a", "groups.getById")
    assert a.err("groups.getById", group_ids=gid)["error_code"] == 29
    assert "response" in b("groups.getById", group_ids=gid)
    q = server.quotas()["by_token"]
    assert q[key("a")]["wall.getComments"] == {"used": 2, "limit": 2, "exhausted": True}
    assert q[key("a")]["groups.getById"] == {"used": 0, "limit": None, "exhausted": True}
    assert q[key("b")]["wall.get"] == {"used": 1, "limit": 1, "exhausted": True}
    # A day later (server clock) every quota is fresh; the per-token limit stays.
    clock.t += 86_400
    assert server.quotas()["resets_in_seconds"] == 86_400
    assert "response" in a("groups.getById", group_ids=gid)
    assert "response" in b("wall.get", owner_id=-gid, count=1)
    assert b.err("wall.get", owner_id=-gid, count=1)["error_code"] == 29


def test_control_api_for_tokens(emulator_factory: Factory, make_api: MakeApi) -> None:
    clock = FakeClock()
    server = emulator_factory(rate=1, tokens=["a", "b"], clock=clock)
    gid = open_gid(server.world)
    a = make_api(server, token="a")
    http = a.http
    ctl = f"{server.url}/_emulator"
    r = http.post(f"{ctl}/rate", json={"token_key": key("a"), "rate": 4})
    assert r.json() == {"ok": True, "rate": 4.0}
    assert codes(a, gid, 5) == [None] * 4 + [6]
    r = http.post(f"{ctl}/quota", json={"token": "a", "method": "wall.get", "exhaust": True})
    assert r.json()["quotas"]["by_token"][key("a")]["wall.get"]["exhausted"] is True
    clock.t += 1
    assert a.err("wall.get", owner_id=-gid)["error_code"] == 29
    http.post(f"{ctl}/quota", json={"token_key": key("b"), "method": "wall.get", "limit": 0})
    b = make_api(server, token="b")
    assert b.err("wall.get", owner_id=-gid)["error_code"] == 29
    assert http.get(f"{ctl}/quota").json()["by_token"][key("b")]["wall.get"]["limit"] == 0
    bad = http.post(f"{ctl}/rate", json={"token": "zzz", "rate": 4})
    assert bad.status_code == 400 and "zzz" not in bad.text and key("zzz") in bad.text
    assert http.post(f"{ctl}/quota", json={"method": "wall.get"}).status_code == 400
    http.post(f"{ctl}/reset", json={"quota": True})
    clock.t += 1
    assert "response" in a("wall.get", owner_id=-gid, count=1)
    assert b.err("wall.get", owner_id=-gid)["error_code"] == 29  # the limit override stays
