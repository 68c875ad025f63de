"""The client against the emulator over HTTP: throttle, error classes, execute packs."""

import pytest

from vk_pipeline.emulator import FaultSpec, World, WorldSpec
from vk_pipeline.vk import (
    Call,
    ObjectError,
    VKFatalError,
    VKQuotaError,
    VKResource,
    VKRetriesExhaustedError,
    fetch_wall,
)
from vk_pipeline.vk.client import _pair_execute_errors


def open_group(world: World) -> int:
    return next(g for g in world.group_ids() if world.group_kind(g) == "open" and world.posts(g))


def test_sustained_paging_stays_under_the_limit(emulator_factory, make_client):
    server = emulator_factory(rate=10)
    client = make_client(server, rate=10, use_execute=False)
    gid = open_group(server.world)
    for _ in range(40):
        client.call("wall.get", owner_id=-gid, count=1)
    stats = server.stats()
    assert stats["errors"].get("6", 0) == 0
    assert stats["http_requests"] == 40
    # How fully the budget is used is a benchmark figure (benchmarks/client_bench.py), not a
    # timed assertion: this machine is shared and noisy.


def test_unknown_token_fails_fast_without_naming_it(emulator_factory, make_client):
    server = emulator_factory()
    secret = "s3cr3t-token-never-printed"
    client = make_client(server, token=secret)
    with pytest.raises(VKFatalError) as info:
        client.call("groups.getById", group_ids=server.world.group_ids()[0])
    assert info.value.code == 5
    assert secret not in str(info.value) and secret not in repr(info.value)
    assert server.stats()["http_requests"] == 1  # fatal: no retries


def test_resource_repr_hides_the_token():
    resource = VKResource(
        access_token="hidden-token-value", api_base_url="http://127.0.0.1:1/method"
    )
    assert "hidden-token-value" not in repr(resource)
    assert "hidden-token-value" not in repr(resource.get_client())


def test_community_token_is_refused_by_wall_get(emulator_factory, make_client):
    server = emulator_factory(tokens=["user-token"], group_tokens=["club-token"])
    client = make_client(server, token="club-token")
    with pytest.raises(VKFatalError) as info:
        client.call("wall.get", owner_id=-open_group(server.world))
    assert info.value.code == 27


@pytest.mark.parametrize(
    "fault",
    [
        FaultSpec(error_10=0.5),
        FaultSpec(error_1=0.5),
        FaultSpec(error_9=0.5),
        FaultSpec(http_5xx=0.5),
        FaultSpec(drop=0.5),
        FaultSpec(non_json=0.5),
        FaultSpec(slow=0.3, slow_seconds=1.0),
    ],
    ids=["err10", "err1", "err9", "http5xx", "drop", "non_json", "slow"],
)
def test_transient_faults_are_retried_to_the_right_answer(emulator_factory, make_client, fault):
    server = emulator_factory()
    gid = open_group(server.world)
    server.set_faults("*", fault)
    client = make_client(server, timeout_seconds=0.5, max_attempts=12)
    truth = server.world.posts(gid)
    got = [
        client.call("wall.get", owner_id=-gid, offset=i, count=1)["items"][0]["id"]
        for i in range(8)
    ]
    assert got == [p["id"] for p in truth[:8]]
    assert client.stats.retries > 0


def test_transient_faults_give_up_after_the_attempt_cap(emulator_factory, make_client):
    server = emulator_factory()
    server.set_faults("*", FaultSpec(http_5xx=1.0))
    client = make_client(server, max_attempts=4)
    with pytest.raises(VKRetriesExhaustedError) as info:
        client.call("groups.getById", group_ids=server.world.group_ids()[0])
    assert info.value.attempts == 4
    assert server.stats()["http_requests"] == 4


def test_daily_quota_stops_the_method_for_the_run(emulator_factory, make_client):
    server = emulator_factory(wall_get_daily_quota=3)
    gid = open_group(server.world)
    client = make_client(server)
    for _ in range(3):
        client.call("wall.get", owner_id=-gid, count=1)
    with pytest.raises(VKQuotaError, match=r"wall\.get"):
        client.call("wall.get", owner_id=-gid, count=1)
    sent = server.stats()["http_requests"]
    with pytest.raises(VKQuotaError):
        client.call("wall.get", owner_id=-gid, count=1)
    assert server.stats()["http_requests"] == sent  # stopped locally, not asked again
    # other methods keep working
    assert client.call("groups.getById", group_ids=gid)


def test_quota_inside_execute_is_raised(emulator_factory, make_client):
    server = emulator_factory(wall_get_daily_quota=2)
    gid = open_group(server.world)
    client = make_client(server)
    calls = [Call("wall.get", {"owner_id": -gid, "count": 1, "offset": i}) for i in range(4)]
    with pytest.raises(VKQuotaError):
        client.call_many(calls)


def test_per_object_errors_come_back_as_results(emulator_factory, make_client):
    server = emulator_factory()
    world = server.world
    client = make_client(server)
    for kind in ("closed", "private", "banned", "deleted", "wall_off"):
        gid = next(g for g in world.group_ids() if world.group_kind(g) == kind)
        result = fetch_wall(client, -gid)
        assert isinstance(result.error, ObjectError), kind
        assert result.posts == []


def test_execute_pack_with_failed_slots(emulator_factory, make_client):
    server = emulator_factory()
    world = server.world
    client = make_client(server)
    gid = open_group(world)
    closed = next(g for g in world.group_ids() if world.group_kind(g) == "closed")
    calls = [
        Call("wall.get", {"owner_id": -gid, "count": 2}),
        Call("wall.get", {"owner_id": -closed, "count": 2}),
        Call("wall.get", {"owner_id": -gid, "count": 2, "offset": 2}),
    ]
    results = client.call_many(calls)
    # A lone token is not tried with one call first: the pack goes, and settles its kind.
    assert server.stats()["by_method"]["execute"]["http_requests"] == 1
    assert client.tokens.kind(client.tokens.fingerprints[0]) == "user"
    assert [p["id"] for p in results[0]["items"]] == [p["id"] for p in world.posts(gid)[:2]]
    assert isinstance(results[1], ObjectError)
    assert [p["id"] for p in results[2]["items"]] == [p["id"] for p in world.posts(gid)[2:4]]


def test_execute_errors_pair_by_method_not_by_position():
    # The shape VK sent in voronind/vk#42: an extra entry for "execute" itself.
    calls = [Call("friends.get"), Call("users.get"), Call("friends.get")]
    slots = [False, {"ok": 1}, False]
    errors = [
        {"method": "friends.get", "error_code": 15, "error_msg": "Access denied: user deactivated"},
        {"method": "execute", "error_code": 15, "error_msg": "Access denied: user deactivated"},
        {"method": "friends.get", "error_code": 30, "error_msg": "This profile is private"},
    ]
    assert _pair_execute_errors(calls, slots, errors) == [
        (15, "Access denied: user deactivated"),
        None,
        (30, "This profile is private"),
    ]
    # A false slot with no entry left is retried rather than guessed.
    assert _pair_execute_errors(calls[:1], [False], [])[0][0] == "unpaired"


def test_response_too_big_shrinks_the_pack(emulator_factory, make_client):
    world = World(WorldSpec(seed=3, groups=1, posts=400, comments=200, special_groups=False))
    server = emulator_factory(world=world, max_response_bytes=400_000)
    gid = world.group_ids()[0]
    client = make_client(server)
    result = fetch_wall(client, -gid)
    assert [p["id"] for p in result.posts] == [p["id"] for p in world.posts(gid)]
    assert client.execute_batch_size < 25
    assert server.stats()["errors"].get("13", 0) >= 1
