"""VK ID's refresh grant at `POST /oauth2/auth` over real HTTP: the answer's shape, single-use
refresh tokens (also under concurrency), minted access tokens that expire, refusals."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from vk_pipeline.emulator import EmulatorServer
from vk_pipeline.emulator.access import token_key
from vk_pipeline_tests.emulator.test_limits import FakeClock
from vk_pipeline_tests.fixtures.emulator import Api

Factory = Callable[..., EmulatorServer]
MakeApi = Callable[..., Api]

CLIENT = "51234567"
FIRST = "first-refresh-token-from-sign-in"
DEVICE = "device-abc"
DEAD = {"error": "invalid_request", "error_description": "refresh_token is missing or invalid"}


def refresh(server: EmulatorServer, token: str, **over: str) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "client_id": CLIENT,
        "device_id": DEVICE,
        "state": "s" * 32,
        **over,
    }
    return httpx.post(f"{server.url}/oauth2/auth", data=form)


@pytest.fixture
def vkid_server(emulator_factory: Factory) -> EmulatorServer:
    return emulator_factory(vkid_clients={CLIENT: FIRST}, vkid_access_ttl=3600)


def test_refresh_answer_and_rotation(vkid_server: EmulatorServer, make_api: MakeApi) -> None:
    r = refresh(vkid_server, FIRST, state="my-state-123")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert set(body) == {
        "access_token",
        "refresh_token",
        "id_token",
        "token_type",
        "expires_in",
        "user_id",
        "state",
        "scope",
    }
    assert (body["token_type"], body["expires_in"], body["state"]) == (
        "Bearer",
        3600,
        "my-state-123",
    )
    assert isinstance(body["user_id"], int) and "wall" in body["scope"].split()
    assert body["refresh_token"] != FIRST
    # The minted access token is a user token: it may batch through execute and read walls.
    api = make_api(vkid_server, token=body["access_token"])
    gid = vkid_server.world.group_ids()[0]
    assert api.ok("execute", code=f"return API.groups.getById({{group_ids: {gid}}});")
    assert vkid_server.tokens()[token_key(body["access_token"])]["kind"] == "user"
    # The old refresh token is dead from now on; the new one works exactly once.
    again = refresh(vkid_server, FIRST)
    assert (again.status_code, again.json()) == (400, {**DEAD, "state": "s" * 32})
    second = refresh(vkid_server, body["refresh_token"])
    assert second.status_code == 200
    assert refresh(vkid_server, body["refresh_token"]).json()["error"] == "invalid_request"
    # Both access tokens keep working until they expire.
    assert api.ok("groups.getById", group_ids=gid)
    assert make_api(vkid_server, token=second.json()["access_token"]).ok(
        "groups.getById", group_ids=gid
    )
    stats = vkid_server.stats()["vkid"]
    assert (stats["refreshes"], stats["refused"]) == (2, 2)
    assert stats["errors"] == {"invalid_request": 2}
    assert stats["by_client"][CLIENT]["refreshes"] == 2


def test_web_sdk_style_query_and_body(vkid_server: EmulatorServer) -> None:
    # vkid-web-sdk puts everything but the refresh token in the query string.
    query = {"grant_type": "refresh_token", "client_id": CLIENT, "device_id": DEVICE, "state": "q"}
    r = httpx.post(f"{vkid_server.url}/oauth2/auth", params=query, data={"refresh_token": FIRST})
    assert r.status_code == 200 and r.json()["state"] == "q"


def race(server: EmulatorServer, token: str, n: int = 2) -> list[httpx.Response]:
    """`n` refreshes with one refresh token, sent at the same moment from `n` threads."""
    barrier = threading.Barrier(n)
    answers: list[httpx.Response] = []
    form = {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "client_id": CLIENT,
        "device_id": DEVICE,
    }

    def go() -> None:
        with httpx.Client() as http:
            barrier.wait()
            answers.append(http.post(f"{server.url}/oauth2/auth", data=form))

    threads = [threading.Thread(target=go) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_concurrent_refreshes_with_one_token_exactly_one_wins(vkid_server: EmulatorServer) -> None:
    token = FIRST
    for _ in range(5):
        answers = race(vkid_server, token, n=3)
        assert sorted(a.status_code for a in answers) == [200, 400, 400]
        token = next(a for a in answers if a.status_code == 200).json()["refresh_token"]
    stats = vkid_server.stats()["vkid"]
    assert (stats["refreshes"], stats["refused"]) == (5, 10)


def test_minted_access_tokens_expire(emulator_factory: Factory, make_api: MakeApi) -> None:
    clock = FakeClock()
    server = emulator_factory(vkid_clients={CLIENT: FIRST}, vkid_access_ttl=5, clock=clock)
    body = refresh(server, FIRST).json()
    assert body["expires_in"] == 5
    api = make_api(server, token=body["access_token"])
    gid = server.world.group_ids()[0]
    clock.t += 4.9
    assert api.ok("groups.getById", group_ids=gid)
    clock.t += 0.1
    for method, params in (
        ("groups.getById", {"group_ids": gid}),
        ("execute", {"code": "return 1;"}),
    ):
        err = api.err(method, **params)
        assert (err["error_code"], err["error_msg"]) == (
            5,
            "User authorization failed: access_token has expired.",
        )
    # A refresh gives a working token again; the expired one stays expired.
    fresh = make_api(server, token=refresh(server, body["refresh_token"]).json()["access_token"])
    assert fresh.ok("groups.getById", group_ids=gid)
    assert api.err("groups.getById", group_ids=gid)["error_code"] == 5
    stats = server.stats()
    assert stats["by_token"][token_key(body["access_token"])]["errors"] == {"5": 3}
    assert server.tokens()[token_key(body["access_token"])]["expired"]


@pytest.mark.parametrize(
    ("over", "status", "error", "description"),
    [
        (
            {"grant_type": "authorization_code"},
            400,
            "invalid_request",
            "grant_type is missing or invalid",
        ),
        ({"grant_type": ""}, 400, "invalid_request", "grant_type is missing or invalid"),
        ({"client_id": "999"}, 401, "invalid_client", "client_id is missing or invalid"),
        ({"device_id": ""}, 400, "invalid_request", "device_id is missing or invalid"),
        ({"refresh_token": ""}, 400, "invalid_request", "refresh_token is missing or invalid"),
        ({"refresh_token": "guess"}, 400, "invalid_request", "refresh_token is missing or invalid"),
    ],
)
def test_refusals(vkid_server: EmulatorServer, over, status, error, description) -> None:
    r = refresh(vkid_server, FIRST, **over)
    assert r.status_code == status
    assert r.json() == {"error": error, "error_description": description, "state": "s" * 32}
    assert FIRST not in r.text
    # A refused request does not spend the refresh token.
    assert refresh(vkid_server, FIRST).status_code == 200


def test_device_is_bound_by_the_first_refresh(vkid_server: EmulatorServer) -> None:
    token = refresh(vkid_server, FIRST).json()["refresh_token"]
    other = refresh(vkid_server, token, device_id="another-device")
    assert other.json()["error_description"] == "device_id is missing or invalid"
    assert refresh(vkid_server, token).status_code == 200


def test_only_post(vkid_server: EmulatorServer) -> None:
    assert httpx.get(f"{vkid_server.url}/oauth2/auth").status_code == 405


def control(server: EmulatorServer, **payload: Any) -> dict[str, Any]:
    r = httpx.post(f"{server.url}/_emulator/vkid", json=payload)
    assert r.status_code == 200, r.text
    return r.json()


def test_control_revoke_chain_new_sign_in_and_ttl(vkid_server: EmulatorServer) -> None:
    token = refresh(vkid_server, FIRST).json()["refresh_token"]
    clients = control(vkid_server, client_id=CLIENT, revoke_refresh=True)["clients"]
    assert clients[CLIENT]["alive"] is False
    assert refresh(vkid_server, token).json() == {**DEAD, "state": "s" * 32}
    # A person signs in again: the app gets a new first refresh token.
    control(vkid_server, client_id=CLIENT, refresh_token="after-sign-in", access_ttl=7)
    r = refresh(vkid_server, "after-sign-in")
    assert r.json()["expires_in"] == 7
    view = httpx.get(f"{vkid_server.url}/_emulator/vkid").json()
    assert view["access_ttl"] == 7
    assert view["clients"][CLIENT] == {
        "refreshes": 2,
        "refused": 1,
        "alive": True,
        "device_bound": True,
        "user_id": r.json()["user_id"],
    }
    bad = httpx.post(f"{vkid_server.url}/_emulator/vkid", json={"access_ttl": 0})
    assert bad.status_code == 400 and "vkid_access_ttl" in bad.json()["error"]


def test_no_token_reaches_stats_or_listings(vkid_server: EmulatorServer, make_api: MakeApi) -> None:
    body = refresh(vkid_server, FIRST).json()
    make_api(vkid_server, token=body["access_token"])("groups.getById", group_ids=1)
    seen = json.dumps(
        [
            vkid_server.stats(),
            vkid_server.tokens(),
            vkid_server.quotas(),
            httpx.get(f"{vkid_server.url}/_emulator/vkid").json(),
        ]
    )
    for secret in (FIRST, body["access_token"], body["refresh_token"], body["id_token"]):
        assert secret not in seen
