"""VK's wire format: GET/POST/multipart, `v`, JSON bodies, escaping, control endpoints."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import httpx

from vk_pipeline.emulator import DEMO_TOKEN, EmulatorServer, World, WorldSpec
from vk_pipeline_tests.fixtures.emulator import Api


def test_get_post_and_multipart_are_equivalent(api: Api, emulator: EmulatorServer) -> None:
    gid = emulator.world.group_ids()[0]
    post = api.raw("wall.get", owner_id=-gid, count=3)
    get = api.raw("wall.get", http_method="GET", owner_id=-gid, count=3)
    multi = api.http.post(
        f"{emulator.base_url}/wall.get",
        files={
            "owner_id": (None, str(-gid)),
            "count": (None, "3"),
            "access_token": (None, DEMO_TOKEN),
            "v": (None, "5.199"),
        },
    )
    assert post.status_code == get.status_code == multi.status_code == 200
    assert post.headers["content-type"].startswith("application/json")
    assert post.json() == get.json() == multi.json()
    assert post.json()["response"]["items"] == emulator.world.posts(gid)[:3]
    # VK escapes "/" inside strings and sends raw UTF-8.
    groups = api.raw("groups.getById", group_ids=gid)
    assert "https:\\/\\/" in groups.text
    assert (
        "\\u04" not in groups.text and groups.json()["response"]["groups"][0]["name"] in groups.text
    )


def test_version_is_required(
    api: Api, make_api: Callable[..., Api], emulator: EmulatorServer
) -> None:
    gid = emulator.world.group_ids()[0]
    err = make_api(emulator, v="")("groups.getById", group_ids=gid)["error"]
    assert (err["error_code"], err["error_msg"]) == (8, "Invalid request: v (version) is required")
    assert api.err("groups.getById", group_ids=gid, v="latest")["error_code"] == 8


def test_json_body_is_not_read(emulator: EmulatorServer) -> None:
    gid = emulator.world.group_ids()[0]
    url = f"{emulator.base_url}/groups.getById"
    payload = {"group_ids": gid, "v": "5.199", "access_token": DEMO_TOKEN}
    r = httpx.post(url, json=payload)
    assert r.json()["error"]["error_code"] == 5  # token inside JSON is never seen
    r = httpx.post(url, json=payload, headers={"Authorization": f"Bearer {DEMO_TOKEN}"})
    assert r.json()["error"]["error_code"] == 8  # nor is v


def test_error_envelope_never_echoes_the_token(api: Api, emulator: EmulatorServer) -> None:
    r = api.raw("wall.get", owner_id=-999_999_999, count=5)
    err = r.json()["error"]
    assert r.status_code == 200
    assert err["request_params"][:2] == [
        {"key": "oauth", "value": "1"},
        {"key": "method", "value": "wall.get"},
    ]
    keys = {p["key"] for p in err["request_params"]}
    assert {"owner_id", "count", "v"} <= keys and "access_token" not in keys
    assert DEMO_TOKEN not in r.text


def test_text_with_special_characters_round_trips(api: Api, emulator: EmulatorServer) -> None:
    w = emulator.world
    texts = [p["text"] for g in w.group_ids() if w.group_kind(g) == "open" for p in w.posts(g)]
    joined = "".join(texts)
    for needle in ('"', "\\", "\n", "\t", "ё"):
        assert needle in joined, needle
    assert any(ord(ch) > 0xFFFF for ch in joined)  # emoji outside the BMP
    for g in w.group_ids():
        if w.group_kind(g) == "open" and w.posts(g):
            assert api.ok("wall.get", owner_id=-g, count=100)["items"] == w.posts(g)[:100]


def test_control_endpoints(emulator_factory: Callable[..., EmulatorServer]) -> None:
    world = World(WorldSpec(seed=5, groups=2, posts=40, comments=300, special_groups=False))
    server = emulator_factory(world=world)
    with httpx.Client(base_url=server.url) as http:
        http.post(
            f"/method/groups.getById?group_ids={world.group_ids()[0]}&v=5.199&access_token={DEMO_TOKEN}"
        )
        stats = http.get("/_emulator/stats").json()
        assert stats == server.stats()
        assert stats["http_requests"] == 1
        assert list(stats["by_token"]) == [hashlib.sha256(DEMO_TOKEN.encode()).hexdigest()[:8]]
        assert DEMO_TOKEN not in json.dumps(stats)
        assert http.post("/_emulator/reset").json() == {"ok": True}
        assert server.stats()["http_requests"] == 0
        before = world.now
        summary = http.post("/_emulator/advance", json={"days": 2, "new_posts": 0.5}).json()
        assert world.now == before + 2 * 86_400 == summary["now"]
        assert summary["new_posts"] > 0
        assert http.post("/_emulator/advance", json={"bogus": 1}).status_code == 400
        r = http.post("/_emulator/faults", json={"method": "wall.get", "http_5xx": 0.5})
        assert r.json()["faults"]["wall.get"]["http_5xx"] == 0.5
        assert http.post("/_emulator/faults", json={"nope": 1}).status_code == 400
        assert http.delete("/_emulator/faults").json()["faults"] == {}
        assert http.get("/_emulator/health").json()["ok"] is True
        assert http.get("/_emulator/nothing").status_code == 404
        assert http.get("/other").status_code == 404
