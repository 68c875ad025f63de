"""Resolving references through the emulator over HTTP: answers, misses, and request counts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vk_pipeline.emulator import DEMO_TOKEN, EmulatorServer, FaultSpec, World, WorldSpec
from vk_pipeline.grouplists import Ref, pack_sizes, resolve
from vk_pipeline.grouplists.resolve import GROUPS_PER_CALL
from vk_pipeline.vk import VKClient, VKResource

WIDE = WorldSpec(seed=11, groups=1200, posts=40, comments=0, special_groups=True)


@pytest.fixture(scope="module")
def wide_world() -> World:
    return World(WIDE)


def client_for(server: EmulatorServer) -> VKClient:
    return VKResource(
        access_token=DEMO_TOKEN, api_base_url=server.base_url, requests_per_second=1000
    ).get_client()


@pytest.fixture
def wide(emulator_factory, wide_world) -> Iterator[tuple[EmulatorServer, VKClient]]:
    server = emulator_factory(world=wide_world)
    with client_for(server) as client:
        yield server, client


def all_refs(world: World) -> tuple[list[Ref], dict[Ref, int]]:
    """Every community by id, plus each chosen screen name (in a case VK does not care about)."""
    truth: dict[Ref, int] = {}
    for gid in world.group_ids():
        truth[Ref("id", gid)] = gid
        name = world.group(gid)["screen_name"]
        if not name.startswith("club"):
            truth[Ref("name", name.lower())] = gid
    return list(truth), truth


def test_every_reference_resolves_in_one_request(wide):
    server, client = wide
    refs, truth = all_refs(server.world)
    assert len(refs) > 2 * GROUPS_PER_CALL  # three groups.getById calls
    server.reset_stats()
    result = resolve(client, refs)
    assert {ref: info.id for ref, info in result.found.items()} == truth
    assert result.missing == {}
    assert result.calls == 3
    assert server.stats()["http_requests"] == result.http_requests == 1


def test_unknown_names_and_ids_are_reported_one_by_one(wide):
    server, client = wide
    known = server.world.group_ids()[:3]
    refs = [Ref("id", g) for g in known] + [
        Ref("name", "no_such_group_a"),
        Ref("id", 77_777_777),
        Ref("name", "no_such_group_b"),
    ]
    result = resolve(client, refs)
    assert sorted(i.id for i in result.found.values()) == sorted(known)
    assert result.missing == {
        Ref("name", "no_such_group_a"): "VK knows no community with the address 'no_such_group_a'",
        Ref("id", 77_777_777): "VK has no community with id 77777777",
        Ref("name", "no_such_group_b"): "VK knows no community with the address 'no_such_group_b'",
    }


def test_a_call_naming_only_unknown_communities_fails_alone(wide):
    """VK fails a groups.getById whose entries are all unknown (error 100); the other calls of the
    pack still count."""
    server, client = wide
    unknown = [Ref("name", f"ghost_{i}") for i in range(GROUPS_PER_CALL)]
    known = [Ref("id", g) for g in server.world.group_ids()[:10]]
    result = resolve(client, unknown + known)
    assert set(result.missing) == set(unknown)
    assert {r.value for r in result.found} == {r.value for r in known}


def test_deactivated_communities_come_back_with_their_status(emulator_factory, small_world):
    server = emulator_factory(world=small_world)
    with client_for(server) as client:
        result = resolve(client, [Ref("id", g) for g in small_world.group_ids()])
    status = {info.id: info.status for info in result.found.values()}
    for gid in small_world.group_ids():
        kind = small_world.group_kind(gid)
        assert status[gid] == (kind if kind in ("banned", "deleted") else "active")


def test_responses_over_the_limit_are_split_and_still_complete(emulator_factory, wide_world):
    # A server that refuses execute responses above 300 kB: the pack of three calls is too big.
    server = emulator_factory(world=wide_world, max_response_bytes=300_000)
    refs, truth = all_refs(wide_world)
    with client_for(server) as client:
        result = resolve(client, refs)
    assert {ref: info.id for ref, info in result.found.items()} == truth
    assert server.stats()["http_requests"] > 1


def test_transient_server_errors_are_retried(emulator_factory, wide_world):
    server = emulator_factory(world=wide_world, seed=3)
    server.set_faults("*", FaultSpec(http_5xx=0.5))
    refs, truth = all_refs(wide_world)
    with client_for(server) as client:
        client.backoff_base = 0.01
        result = resolve(client, refs)
    assert {ref: info.id for ref, info in result.found.items()} == truth


@pytest.mark.parametrize(
    "calls, budget, sizes",
    [
        (0, 4_000_000, []),
        (1, 4_000_000, [1]),
        (20, 4_000_000, [10, 10]),  # 13 fit in the budget: two even packs, not 13 + 7
        (20, 100_000_000, [20]),
        (60, 100_000_000, [20, 20, 20]),
        (3, 1, [1, 1, 1]),
    ],
)
def test_pack_sizes(calls: int, budget: int, sizes: list[int]):
    assert pack_sizes(calls, budget) == sizes
