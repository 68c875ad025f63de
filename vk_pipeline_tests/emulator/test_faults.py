"""Fault injection: each fault type, per-method targeting, determinism, accounting."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from vk_pipeline.emulator import EmulatorServer, FaultSpec, World
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
    server.set_faults("*", FaultSpec(slow=1.0, slow_seconds=0.3))
    with Api(server) as api:
        t0 = time.perf_counter()
        assert "response" in api("groups.getById", group_ids=gid_of(server))
        assert time.perf_counter() - t0 >= 0.3
        api.http.timeout = httpx.Timeout(0.1)
        with pytest.raises(httpx.ReadTimeout):
            api.raw("groups.getById", group_ids=gid_of(server))


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
