"""fetch_users against the emulator over HTTP: packing, the 5 MB limit, what comes back."""

from __future__ import annotations

from vk_pipeline.vk import fetch_users


def test_45000_ids_take_3_requests_of_20_calls(emulator_factory, make_client):
    client = make_client(emulator_factory())
    ids = list(range(1, 45_001))
    chunks = list(fetch_users(client, [*ids, 7, -5, 0]))  # duplicates and non-users dropped
    assert client.stats.http_requests == 3
    assert client.stats.calls_by_method["users.get"] == 45
    got = [p["id"] for c in chunks for p in c.profiles]
    assert got == ids
    assert not any(c.missing for c in chunks)
    profile = next(p for c in chunks for p in c.profiles if p["id"] == 53)
    assert profile["deactivated"] == "deleted"


def test_a_pack_over_5_mb_is_halved_and_nothing_is_lost(emulator_factory, make_client):
    client = make_client(emulator_factory())
    ids = list(range(1, 25_001))
    chunks = list(fetch_users(client, ids, calls_per_request=25))
    assert sorted(p["id"] for c in chunks for p in c.profiles) == ids
    # The refused pack of 25 is one request, then packs of 12, 12 and 1.
    assert client.stats.http_requests == 4
