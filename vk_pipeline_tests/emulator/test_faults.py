"""Fault injection: each fault type, per-method targeting, determinism, accounting."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from vk_pipeline.emulator import EmulatorServer, FaultSpec, World
from vk_pipeline.emulator.faults import FaultInjector
from vk_pipeline_tests.fixtures.emulator import Api

Factory = Callable[..., EmulatorServer]


@pytest.fixture
def server(emulator_factory: Factory) -> EmulatorServer:
    return emulator_factory(seed=3)


def gid_of(server: EmulatorServer) -> int:
    return server.world.group_ids()[0]


def test_http_5xx(server: EmulatorServer) -> None:
    server.set_faults("*", FaultSpec(http_5xx=1.0))
    with Api(server) as api:
        gid = gid_of(server)
        statuses = {api.raw("groups.getById", group_ids=gid).status_code for _ in range(12)}
    assert statuses <= {500, 502, 503, 504} and len(statuses) > 1
    stats = server.stats()
    assert stats["faults"] == {"http_5xx": 12}
    assert stats["http_requests"] == 12 and stats["api_calls"] == 0


def test_non_json(server: EmulatorServer) -> None:
    server.set_faults("groups.getById", FaultSpec(non_json=1.0))
    with Api(server) as api:
        r = api.raw("groups.getById", group_ids=gid_of(server))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        with pytest.raises(ValueError):
            r.json()
        assert "response" in api("utils.resolveScreenName", screen_name="x")  # other method


def test_drop_closes_without_answer(server: EmulatorServer) -> None:
    server.set_faults("groups.getById", FaultSpec(drop=1.0))
    with Api(server) as api:
        with pytest.raises(httpx.RemoteProtocolError):
            api.raw("groups.getById", group_ids=gid_of(server))
        server.clear_faults()
        assert "response" in api("groups.getById", group_ids=gid_of(server))
    stats = server.stats()
    assert stats["faults"] == {"drop": 1}
    # The dropped request was processed: it counts, like a response lost on the way back.
    assert stats["by_method"]["groups.getById"]["api_calls"] == 2


def test_slow(server: EmulatorServer) -> None:
    server.set_faults("*", FaultSpec(slow=1.0, slow_seconds=0.5))
    with Api(server) as api:
        assert "response" in api("groups.getById", group_ids=gid_of(server))
        assert server.stats()["faults"] == {"slow": 1}
        api.http.timeout = httpx.Timeout(0.1)
        with pytest.raises(httpx.ReadTimeout):
            api.raw("groups.getById", group_ids=gid_of(server))


def test_truncated_json(server: EmulatorServer) -> None:
    server.set_faults("wall.get", FaultSpec(truncated=1.0))
    gid = next(g for g in server.world.group_ids() if server.world.group_kind(g) == "open")
    with Api(server) as api:
        full = len(api.raw("groups.getById", group_ids=gid).content)
        bodies = [api.raw("wall.get", owner_id=-gid, count=5) for _ in range(5)]
        server.clear_faults()
        whole = api.raw("wall.get", owner_id=-gid, count=5).content
    assert full > 0
    for r in bodies:
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        assert 0 < len(r.content) < len(whole) and whole.startswith(r.content)
        with pytest.raises(ValueError):
            r.json()
    assert len({len(r.content) for r in bodies}) > 1  # cut at seeded, varying points
    stats = server.stats()
    assert stats["faults"] == {"truncated": 5}
    # Like a dropped answer, the request was processed before the body was cut.
    assert stats["by_method"]["wall.get"]["api_calls"] == 6


def test_injected_error_6_is_request_level(emulator_factory: Factory) -> None:
    server = emulator_factory(rate=2, seed=3)
    server.set_faults("*", FaultSpec(error_6=1.0))
    gid = gid_of(server)
    with Api(server) as api:
        for _ in range(4):
            err = api.err("groups.getById", group_ids=gid)
            assert (err["error_code"], err["error_msg"]) == (6, "Too many requests per second")
        assert api.err("execute", code="return 1;")["error_code"] == 6
        server.set_faults("*", FaultSpec(error_6=0.0))
        server.set_faults("groups.getById", FaultSpec(error_6=1.0))
        # Inside execute error 6 is never injected: execute is one request for the limit.
        body = api("execute", code=f"return API.groups.getById({{group_ids: {gid}}});")
        assert "execute_errors" not in body and body["response"]["groups"][0]["id"] == gid
        # Injected 6 never entered the rate window: two real requests still fit in it.
        server.clear_faults()
        assert "response" in api("groups.getById", group_ids=gid)
    stats = server.stats()
    assert stats["faults"] == {"error_6": 5}
    assert stats["errors"] == {"6": 5}
    assert stats["rate_limited"] == 0  # genuine rejections only
    assert stats["accepted"] == 2
    assert stats["by_method"]["groups.getById"]["api_calls"] == 2
    (tok,) = stats["by_token"].values()
    assert tok["faults"] == {"error_6": 5} and tok["errors"] == {"6": 5}


def test_unknown_token_gets_error_5_not_an_injected_error(
    server: EmulatorServer, make_api: Callable[..., Api]
) -> None:
    server.set_faults("*", FaultSpec(error_6=1.0, error_10=1.0))
    err = make_api(server, token="wrong").err("groups.getById", group_ids=gid_of(server))
    assert err["error_code"] == 5
    assert server.stats()["faults"] == {}


def test_draws_per_request_do_not_depend_on_rates() -> None:
    def errors(spec: FaultSpec) -> list[int | None]:
        inj = FaultInjector(seed=5)
        inj.set("*", spec)
        return [inj.decide("wall.get").error_code for _ in range(200)]

    base = errors(FaultSpec(error_10=0.3))
    assert errors(FaultSpec(error_10=0.3, truncated=0.5, slow=0.2, drop=0.1)) == base
    assert 0 < base.count(10) < 200


def test_fault_spec_validation() -> None:
    with pytest.raises(ValueError, match="error_6"):
        FaultSpec(error_6=1.5)
    with pytest.raises(ValueError, match="unknown fault fields"):
        FaultSpec.from_dict({"error_7": 0.1})


@pytest.mark.parametrize(
    ("field", "code", "msg"),
    [
        ("error_1", 1, "Unknown error occurred"),
        ("error_9", 9, "Flood control"),
        ("error_10", 10, "Internal server error"),
    ],
)
def test_injected_api_errors(server: EmulatorServer, field: str, code: int, msg: str) -> None:
    server.set_faults("wall.get", FaultSpec(**{field: 1.0}))
    with Api(server) as api:
        err = api.err("wall.get", owner_id=-gid_of(server))
        assert (err["error_code"], err["error_msg"]) == (code, msg)
        assert "response" in api("groups.getById", group_ids=gid_of(server))
        # Inside execute only the inner call fails.
        body = api("execute", code=f"return [API.wall.get({{owner_id: -{gid_of(server)}}}), 7];")
        assert body["response"] == [False, 7]
        assert body["execute_errors"] == [
            {"method": "wall.get", "error_code": code, "error_msg": msg}
        ]
    stats = server.stats()
    assert stats["errors"] == {str(code): 2}
    assert stats["faults"] == {field: 2}
    assert stats["by_method"]["wall.get"] == {
        "http_requests": 1,
        "api_calls": 2,
        "errors": {str(code): 2},
    }


def test_faults_are_seeded(small_world: World) -> None:
    def run(seed: int) -> list[int]:
        with EmulatorServer(small_world, rate=1000, seed=seed) as s, Api(s) as api:
            s.set_faults("*", FaultSpec(error_10=0.5))
            return [
                api("groups.getById", group_ids=small_world.group_ids()[0])
                .get("error", {})
                .get("error_code", 0)
                for _ in range(30)
            ]

    a, b, c = run(1), run(1), run(2)
    assert a == b != c
    assert 0 < a.count(10) < 30
