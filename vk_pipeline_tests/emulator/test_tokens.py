"""Token kinds over real HTTP: which kind may call what (issue 16's table, VK's schema), the rate
of each kind, expired and revoked tokens (5), captcha (14), and how they are counted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from vk_pipeline.emulator import DEMO_TOKEN, EmulatorServer, World
from vk_pipeline.emulator.access import token_key
from vk_pipeline.emulator.methods import METHODS
from vk_pipeline.emulator.tokens import TOKEN_KINDS
from vk_pipeline_tests.emulator.test_limits import FakeClock
from vk_pipeline_tests.fixtures.emulator import Api

Factory = Callable[..., EmulatorServer]
MakeApi = Callable[..., Api]

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "vk-api-schema"
GROUP_MSG = "Group authorization failed: method is unavailable with group auth."
APP_MSG = "Application authorization failed: method is unavailable with service token."
TOKENS = {"user": "user-token", "group": "club-token", "service": "app-service-key"}
ALL = {"user", "group", "service"}
# The table of issue 16, written out by hand so the emulator's copy is checked, not echoed.
ISSUE_TABLE = {
    "execute": {"user", "group"},
    "wall.get": {"user", "service"},
    "wall.getComments": {"user", "service"},
    "wall.getById": {"user", "service"},
    "groups.getById": ALL,
    "utils.resolveScreenName": ALL,
    "users.get": ALL,  # issue 18 (VK's users.get: user, group, service)
}


def schema_token_kinds() -> dict[str, frozenset[str]]:
    out = {}
    for f in sorted(SCHEMA.glob("*/methods.json")):
        for m in json.loads(f.read_text(encoding="utf-8"))["methods"]:
            out[m["name"]] = frozenset(m["access_token_type"])
    return out


def test_the_kinds_table_is_the_vendored_schemas() -> None:
    schema = schema_token_kinds()
    served = set(METHODS) | {"execute"}
    assert set(TOKEN_KINDS) == served
    # On a mismatch, this is the table to paste into vk_pipeline/emulator/tokens.py.
    expected = {m: schema[m] for m in sorted(served)}
    assert expected == TOKEN_KINDS, {m: sorted(k) for m, k in expected.items()}
    assert {m: set(k) for m, k in TOKEN_KINDS.items()} == ISSUE_TABLE


@pytest.fixture
def kinds_server(emulator_factory: Factory) -> EmulatorServer:
    return emulator_factory(
        tokens=[TOKENS["user"]],
        group_tokens=[TOKENS["group"]],
        service_tokens=[TOKENS["service"]],
    )


def open_group(world: World) -> tuple[int, int]:
    """An open community and one of its posts with comments."""
    for gid in world.group_ids():
        if world.group_kind(gid) == "open":
            for post in world.posts(gid):
                if post["comments"]["count"]:
                    return gid, post["id"]
    raise AssertionError("no open community with comments")


def calls(world: World) -> dict[str, dict[str, Any]]:
    gid, pid = open_group(world)
    return {
        "groups.getById": {"group_ids": gid},
        "utils.resolveScreenName": {"screen_name": f"club{gid}"},
        "wall.get": {"owner_id": -gid, "count": 1},
        "wall.getComments": {"owner_id": -gid, "post_id": pid, "count": 1},
        "wall.getById": {"posts": f"-{gid}_{pid}"},
        "users.get": {"user_ids": "1,2"},
    }


ROWS = [
    (kind, method) for kind in sorted(ALL) for method in sorted(ISSUE_TABLE) if method != "execute"
]


@pytest.mark.parametrize(("kind", "method"), ROWS)
def test_each_kind_direct(kinds_server: EmulatorServer, make_api: MakeApi, kind, method) -> None:
    api = make_api(kinds_server, token=TOKENS[kind])
    body = api(method, **calls(kinds_server.world)[method])
    if kind in ISSUE_TABLE[method]:
        assert "response" in body, body
        assert body["response"], body  # a real answer, not an empty miss
    else:
        err = body["error"]
        want = (27, GROUP_MSG) if kind == "group" else (28, APP_MSG)
        assert (err["error_code"], err["error_msg"]) == want
        stats = kinds_server.stats()["by_token"][token_key(TOKENS[kind])]
        assert stats["kind"] == kind
        assert stats["errors"] == {str(want[0]): 1}
        assert stats["by_method"][method]["errors"] == {str(want[0]): 1}


def vkscript_call(method: str, params: dict[str, Any]) -> str:
    args = ", ".join(
        f"{k}: {v}" if isinstance(v, int) else f'{k}: "{v}"' for k, v in params.items()
    )
    return f"API.{method}({{{args}}})"


@pytest.mark.parametrize("kind", ["user", "group"])
def test_each_kind_inside_execute(kinds_server: EmulatorServer, make_api: MakeApi, kind) -> None:
    api = make_api(kinds_server, token=TOKENS[kind])
    methods = sorted(m for m in ISSUE_TABLE if m != "execute")
    table = calls(kinds_server.world)
    code = "return [" + ", ".join(vkscript_call(m, table[m]) for m in methods) + "];"
    body = api("execute", code=code)
    refused = [m for m in methods if kind not in ISSUE_TABLE[m]]
    for method, slot in zip(methods, body["response"], strict=True):
        assert (slot is False) == (method in refused), (method, slot)
    expected = [{"method": m, "error_code": 27, "error_msg": GROUP_MSG} for m in refused]
    assert body.get("execute_errors", []) == expected
    # Each refused inner call is one error 27 of this token, under the inner method.
    stats = kinds_server.stats()
    mine = stats["by_token"][token_key(TOKENS[kind])]
    assert mine["kind"] == kind
    assert mine["errors"] == ({"27": len(refused)} if refused else {})
    for m in refused:
        assert mine["by_method"][m]["errors"] == {"27": 1}
    assert stats["by_method"]["execute"]["errors"] == {}  # the request itself succeeded


def test_service_token_cannot_execute(kinds_server: EmulatorServer, make_api: MakeApi) -> None:
    api = make_api(kinds_server, token=TOKENS["service"])
    gid, _ = open_group(kinds_server.world)
    for _ in range(2):
        err = api.err("execute", code=f"return API.groups.getById({{group_ids: {gid}}});")
        assert (err["error_code"], err["error_msg"]) == (28, APP_MSG)
        assert {"key": "method", "value": "execute"} in err["request_params"]
    stats = kinds_server.stats()
    mine = stats["by_token"][token_key(TOKENS["service"])]
    assert mine["errors"] == {"28": 2}
    assert mine["by_method"]["execute"]["errors"] == {"28": 2}
    assert "groups.getById" not in mine["by_method"]  # nothing inside ran
    assert stats["errors"] == {"28": 2}


def test_one_token_has_one_kind(small_world: World) -> None:
    with pytest.raises(ValueError, match=f"key {token_key('t')}.* user and service") as info:
        EmulatorServer(small_world, tokens=["t"], service_tokens=["t"])
    assert "'t'" not in str(info.value)


def test_rates_per_kind(emulator_factory: Factory, make_api: MakeApi) -> None:
    clock = FakeClock()
    server = emulator_factory(
        rate=3,
        group_rate=None,  # VK's documented limits: user 3/s, community 20/s, service 3/s
        service_rate=None,
        tokens=[TOKENS["user"]],
        group_tokens=[TOKENS["group"]],
        service_tokens=[TOKENS["service"], "fast-service-key"],
        token_rates={"fast-service-key": 8},
        clock=clock,
    )
    assert (server.rate, server.group_rate, server.service_rate) == (3, 20, 3)
    gid = server.world.group_ids()[0]
    accepted = {}
    for name, token in (*TOKENS.items(), ("fast", "fast-service-key")):
        api = make_api(server, token=token)
        answers = [api("groups.getById", group_ids=gid) for _ in range(25)]
        accepted[name] = sum("response" in a for a in answers)
        assert all(a["error"]["error_code"] == 6 for a in answers if "error" in a)
    assert accepted == {"user": 3, "group": 20, "service": 3, "fast": 8}
    described = server.tokens()
    assert {v["kind"]: v["rate"] for v in described.values() if v["rate"] != 8} == {
        "user": 3,
        "group": 20,
        "service": 3,
    }
    # One second later every window is free again; a service token's own rate can be changed.
    clock.t += 1.0
    httpx.post(f"{server.url}/_emulator/rate", json={"token": TOKENS["service"], "rate": 5})
    api = make_api(server, token=TOKENS["service"])
    assert sum("response" in api("groups.getById", group_ids=gid) for _ in range(9)) == 5


def test_expired_and_revoked_tokens(emulator_factory: Factory, make_api: MakeApi) -> None:
    clock = FakeClock()
    server = emulator_factory(
        tokens=["a", "b", "short-lived"], token_ttls={"short-lived": 10}, clock=clock
    )
    gid = server.world.group_ids()[0]
    ctl = f"{server.url}/_emulator/token"
    assert httpx.post(ctl, json={"token_key": token_key("a"), "expire": True}).status_code == 200
    assert httpx.post(ctl, json={"token": "b", "revoke": True}).status_code == 200
    for token, msg in (
        ("a", "User authorization failed: access_token has expired."),
        ("b", "User authorization failed: user revoke access for this token."),
    ):
        err = make_api(server, token=token).err("groups.getById", group_ids=gid)
        assert (err["error_code"], err["error_msg"]) == (5, msg)
    short = make_api(server, token="short-lived")
    assert "response" in short("groups.getById", group_ids=gid)
    clock.t += 10
    err = short.err("execute", code="return 1;")
    assert (err["error_code"], err["error_msg"]) == (
        5,
        "User authorization failed: access_token has expired.",
    )
    stats = server.stats()
    assert stats["errors"] == {"5": 3}
    assert stats["accepted"] == 1  # dead tokens never reach the rate window
    for t in ("a", "b", "short-lived"):
        assert stats["by_token"][token_key(t)]["errors"] == {"5": 1}
    described = server.tokens()
    assert described[token_key("a")]["expired"] and described[token_key("b")]["revoked"]
    bad = httpx.post(ctl, json={"token_key": "00000000", "expire": True})
    assert bad.status_code == 400 and "00000000" in bad.json()["error"]


def test_captcha_for_the_next_requests(kinds_server: EmulatorServer, make_api: MakeApi) -> None:
    api = make_api(kinds_server, token=TOKENS["user"])
    other = make_api(kinds_server, token=TOKENS["service"])
    gid = kinds_server.world.group_ids()[0]
    r = httpx.post(
        f"{kinds_server.url}/_emulator/captcha",
        json={"token_key": token_key(TOKENS["user"]), "requests": 2},
    )
    assert r.json()["tokens"][token_key(TOKENS["user"])]["captcha_requests"] == 2
    first = api.raw("groups.getById", group_ids=gid)
    err = first.json()["error"]
    assert (err["error_code"], err["error_msg"]) == (14, "Captcha needed")
    assert TOKENS["user"] not in first.text
    assert err["redirect_uri"].startswith(f"{kinds_server.url}/not_robot_captcha?domain=vk.com")
    assert "session_token=" in err["redirect_uri"]
    assert err["captcha_sid"].isdigit()
    assert err["captcha_img"].startswith(f"{kinds_server.url}/captcha.php?sid={err['captcha_sid']}")
    assert {"key": "group_ids", "value": str(gid)} in err["request_params"]
    assert "response" in other("groups.getById", group_ids=gid)  # other tokens are not affected
    # A whole execute is one request: it answers 14 rather than failing inner calls.
    assert api.err("execute", code="return 1;")["error_code"] == 14
    assert api.ok("groups.getById", group_ids=gid)
    page = httpx.get(err["redirect_uri"])
    assert page.status_code == 200 and "robot" in page.text
    mine = kinds_server.stats()["by_token"][token_key(TOKENS["user"])]
    assert mine["errors"] == {"14": 2}
    assert mine["by_method"]["execute"]["errors"] == {"14": 1}


def test_captcha_for_a_time(emulator_factory: Factory, make_api: MakeApi) -> None:
    clock = FakeClock()
    server = emulator_factory(clock=clock)
    api = make_api(server)
    gid = server.world.group_ids()[0]
    server.require_captcha(DEMO_TOKEN, seconds=30)
    for _ in range(3):
        assert api.err("groups.getById", group_ids=gid)["error_code"] == 14
    clock.t += 29.9
    assert api.err("groups.getById", group_ids=gid)["error_code"] == 14
    clock.t += 0.1
    assert api.ok("groups.getById", group_ids=gid)
    # 0 lifts it at once.
    server.require_captcha(DEMO_TOKEN, seconds=60)
    httpx.post(f"{server.url}/_emulator/captcha", json={"token": DEMO_TOKEN, "seconds": 0})
    assert api.ok("groups.getById", group_ids=gid)
    with pytest.raises(ValueError, match="requests and/or seconds"):
        server.require_captcha(DEMO_TOKEN)


def test_cli_reads_every_kind_from_the_environment() -> None:
    secret = "service-secret-value"
    env = {
        **os.environ,
        "VK_EMULATOR_TOKENS": "u1,u2",
        "VK_EMULATOR_GROUP_TOKENS": "g1",
        "VK_EMULATOR_SERVICE_TOKENS": secret,
        "VK_EMULATOR_VKID_CLIENTS": "51234:first-refresh-token",
    }
    args = ["--port", "0", "--groups", "2", "--posts", "20", "--comments", "40"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vk_pipeline.emulator", *args],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # The start-up lines; read with readline only (communicate() would skip its buffer).
        head = [proc.stdout.readline() for _ in range(3)]
        url = head[0].split()[-1].removesuffix("/method")
        kinds = sorted(t["kind"] for t in httpx.get(f"{url}/_emulator/tokens").json().values())
        assert kinds == ["group", "service", "user", "user"]
        assert httpx.get(f"{url}/_emulator/vkid").json()["clients"]["51234"]["alive"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    out = "".join(head) + proc.stdout.read()
    assert proc.returncode == 0
    assert head[1:] == ["accepted tokens: 4\n", f"VK ID apps: 1 at {url}/oauth2/auth\n"]
    assert secret not in out and "first-refresh-token" not in out
    bad = subprocess.run(
        [sys.executable, "-m", "vk_pipeline.emulator", *args],
        env={**env, "VK_EMULATOR_VKID_CLIENTS": "51234:ok,missing-colon-secret"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "VK_EMULATOR_VKID_CLIENTS item 2: expected client_id:refresh_token" in bad.stderr
    assert "missing-colon-secret" not in bad.stderr
