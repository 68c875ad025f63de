"""A real peer client against the emulator: vk_api 11.10.1's own VKScript over HTTP.

vk_api is a dev/bench dependency only; it is pointed at the emulator through its own `session`
argument (a requests.Session that sends api.vk.ru/method/* to the emulator's base URL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vk_pipeline.emulator import DEMO_TOKEN, EmulatorServer, FaultSpec, World, WorldSpec

vk_api = pytest.importorskip("vk_api")
requests = pytest.importorskip("requests")
jconfig = pytest.importorskip("jconfig")

from vk_api.exceptions import VkToolsException  # noqa: E402
from vk_api.requests_pool import VkRequestsPool, vk_request_one_param_pool  # noqa: E402
from vk_api.tools import VkTools  # noqa: E402

VK_METHOD_URL = "https://api.vk.ru/method/"
COMMENT_PARAMS = {"need_likes": 1, "preview_length": 0, "thread_items_count": 10}


class EmulatorSession(requests.Session):
    """vk_api posts to a fixed https://api.vk.ru/method/<name>; this sends it to the emulator."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/") + "/"

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if url.startswith(VK_METHOD_URL):
            url = self.base_url + url[len(VK_METHOD_URL) :]
        return super().request(method, url, *args, **kwargs)


@pytest.fixture(scope="module")
def world() -> World:
    # Big enough that one wall needs several execute requests at 10 items per call.
    return World(WorldSpec(seed=11, groups=3, posts=900, comments=12_000, special_groups=True))


@pytest.fixture
def server(world: World, emulator_factory: Callable[..., EmulatorServer]) -> EmulatorServer:
    return emulator_factory(world=world)


@pytest.fixture
def vk(server: EmulatorServer) -> Iterator[Any]:
    session = vk_api.VkApi(
        token=DEMO_TOKEN,
        api_version="5.199",
        session=EmulatorSession(server.base_url),
        config=jconfig.MemoryConfig,
    )
    session.RPS_DELAY = 0.0  # the emulator here allows 1000 requests/s
    yield session
    session.http.close()


def open_groups(world: World) -> list[int]:
    return [g for g in world.group_ids() if world.group_kind(g) == "open" and world.posts(g)]


def test_get_all_wall_equals_truth(vk: Any, server: EmulatorServer, world: World) -> None:
    tools = VkTools(vk)
    for gid in open_groups(world):
        server.reset_stats()
        got = tools.get_all("wall.get", 10, {"owner_id": -gid})
        truth = world.posts(gid)
        assert got == {"count": len(truth), "items": truth}
        stats = server.stats()
        # One execute per 25 pages of 10; no call outside execute.
        assert stats["http_requests"] == stats["by_method"]["execute"]["http_requests"]
        assert stats["http_requests"] == -(-max(1, -(-len(truth) // 10)) // 25)
        assert stats["errors"] == {}
    assert max(len(world.posts(g)) for g in open_groups(world)) > 250  # several executes


def fetch_post_comments(tools: Any, gid: int, post_id: int) -> list[dict[str, Any]]:
    """As a vk_api user would: top level with get_all, then every thread with more replies
    than came inline, by comment_id."""
    base = {"owner_id": -gid, "post_id": post_id, **COMMENT_PARAMS}
    out: list[dict[str, Any]] = []
    for c in tools.get_all_iter("wall.getComments", 100, base):
        thread = c.get("thread", {})
        if thread.get("count", 0) > len(thread.get("items", [])):
            replies = list(
                tools.get_all_iter("wall.getComments", 100, {**base, "comment_id": c["id"]})
            )
        else:
            replies = thread.get("items", [])
        out.append({**c, "thread": {**thread, "items": []}})
        out.extend(replies)
    return sorted(out, key=lambda c: c["id"])


def test_get_all_comments_equals_truth(vk: Any, world: World) -> None:
    tools = VkTools(vk)
    gid, post = max(
        ((g, p) for g in open_groups(world) for p in world.posts(g)),
        key=lambda t: t[1]["comments"]["count"],
    )
    truth = world.comments(gid, post["id"])
    assert sum(1 for c in truth if not c["parents_stack"]) > 100  # several top-level pages
    assert max(c.get("thread", {}).get("count", 0) for c in truth) > 100  # a long thread
    assert fetch_post_comments(tools, gid, post["id"]) == truth
    # Every post of one wall, deleted stubs with replies included.
    closed = world.post_ids_with_comments_closed(gid)
    got = {
        p["id"]: fetch_post_comments(tools, gid, p["id"])
        for p in world.posts(gid)
        if p["id"] not in closed
    }
    assert got == {pid: world.comments(gid, pid) for pid in got}
    assert any(c.get("deleted") for cs in got.values() for c in cs)


def test_requests_pool(vk: Any, server: EmulatorServer, world: World) -> None:
    gid = open_groups(world)[0]
    closed = world.post_ids_with_comments_closed(gid)
    posts = [p for p in world.posts(gid) if p["id"] not in closed][:30]
    server.reset_stats()
    with VkRequestsPool(vk) as pool:
        first = {
            p["id"]: pool.method(
                "wall.getComments",
                {"owner_id": -gid, "post_id": p["id"], "count": 100, **COMMENT_PARAMS},
            )
            for p in posts
        }
        missing = pool.method("wall.getComments", {"owner_id": -gid, "post_id": 10**9})
    assert server.stats()["http_requests"] == 2  # 31 calls in packs of 25
    for p in posts:
        result = first[p["id"]].result
        top = [c for c in world.comments(gid, p["id"]) if not c["parents_stack"]]
        assert [c["id"] for c in result["items"]] == [c["id"] for c in top[:100]]
        assert result["count"] == p["comments"]["count"]
    assert not missing.ok and missing.error["error_code"] == 100

    # Mixed methods go through `return [API..., ...]`; a failed slot carries its error.
    cgid, cpid = next(
        (g, pid) for g in open_groups(world) for pid in world.post_ids_with_comments_closed(g)
    )
    with VkRequestsPool(vk) as pool:
        wall = pool.method("wall.get", {"owner_id": -gid, "count": 2})
        group = pool.method("groups.getById", {"group_ids": gid})
        denied = pool.method("wall.getComments", {"owner_id": -cgid, "post_id": cpid})
    assert wall.result["items"] == world.posts(gid)[:2]
    assert group.result["groups"][0]["id"] == gid
    assert not denied.ok and denied.error["error_code"] == 212

    ids = [p["id"] for p in posts[:5]]
    results, errors = vk_request_one_param_pool(
        vk,
        "wall.getComments",
        "post_id",
        [*ids, 10**9],
        default_values={"owner_id": -gid, "count": 1},
    )
    assert sorted(results) == sorted(ids) and list(errors) == [10**9]
    assert [results[p["id"]]["count"] for p in posts[:5]] == [
        p["comments"]["count"] for p in posts[:5]
    ]


def test_get_all_fails_loudly_on_an_inner_error(
    vk: Any, server: EmulatorServer, world: World
) -> None:
    server.set_faults("wall.get", FaultSpec(error_10=1.0))
    with pytest.raises(VkToolsException):
        VkTools(vk).get_all("wall.get", 100, {"owner_id": -open_groups(world)[0]})
