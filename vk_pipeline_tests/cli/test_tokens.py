"""`python -m vk_pipeline tokens` for a mixed pool (user, community, service, VK ID): every token
by fingerprint with what the shared budget knows, never a token."""

from __future__ import annotations

import json

import pytest

from vk_pipeline.resources import build_resources, vk_client
from vk_pipeline.testing.worlds import FAST_RATE
from vk_pipeline.vk import fetch_groups, fetch_wall, fingerprint
from vk_pipeline.vk.vkid import credential_fingerprint
from vk_pipeline_tests.cli.conftest import cli

USER_T, CLUB_T, SERVICE_T = "cli-user-token-1", "cli-club-token-2", "cli-service-token-3"
SEED, CLIENT, DEVICE, KEY = "vk2.a.cli-seed-refresh", "5550001", "dev-1", "cli-secret-key-xyz"


@pytest.fixture
def mixed(emulator_factory, database_url, monkeypatch):
    server = emulator_factory(
        tokens=[USER_T],
        group_tokens=[CLUB_T],
        service_tokens=[SERVICE_T],
        vkid_clients={CLIENT: SEED},
        rate=FAST_RATE,
    )
    for name, value in {
        "VK_API_BASE_URL": server.base_url,
        "VK_ACCESS_TOKENS": f"{USER_T},{CLUB_T},{SERVICE_T}",
        "DATABASE_URL": database_url,
        "VK_ID_REFRESH_TOKEN": SEED,
        "VK_ID_CLIENT_ID": CLIENT,
        "VK_ID_DEVICE_ID": DEVICE,
        "VK_ID_URL": server.url,
        "VK_PIPELINE_SECRET_KEY": KEY,
        "VK_SERVICE_RATE": "5",
    }.items():
        monkeypatch.setenv(name, value)
    return server


def test_tokens_lists_a_mixed_pool_by_fingerprint(mixed) -> None:
    world = mixed.world
    gid = next(g for g in world.group_ids() if world.group_kind(g) == "open" and world.posts(g))
    resources = build_resources(requests_per_second=FAST_RATE, rate_margin_seconds=0.0)
    with vk_client(resources) as client:
        fetch_wall(client, -gid)
        for _ in range(4):
            fetch_groups(client, [gid])
    # Tokens the crawl did not need for a restricted method are settled by the probe.
    probed = cli("tokens", "--probe")
    assert probed.code == 0, probed.err
    assert mixed.stats()["errors"].get("28", 0) == 1
    mixed.require_captcha(SERVICE_T, seconds=3600)
    with vk_client(resources) as client:
        for _ in range(8):
            fetch_groups(client, [gid])

    ran = cli("tokens")
    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert lines[0].split()[:3] == ["TOKEN", "SOURCE", "KIND"]
    by_fp = {line.split()[0]: line for line in lines[1:]}
    vkid = credential_fingerprint(CLIENT, DEVICE)
    assert set(by_fp) == {fingerprint(t) for t in (USER_T, CLUB_T, SERVICE_T)} | {vkid}
    assert " community " in by_fp[fingerprint(CLUB_T)]
    assert " 5/s " in by_fp[fingerprint(SERVICE_T)] and "captcha" in by_fp[fingerprint(SERVICE_T)]
    assert "refreshes" in by_fp[vkid] and " user " in by_fp[vkid]
    for secret in (USER_T, CLUB_T, SERVICE_T, SEED, KEY, "vk2.a."):
        assert secret not in ran.out + ran.err

    as_json = cli("tokens", "--json")
    rows = [json.loads(line) for line in as_json.out.splitlines()]
    kinds = {r["token"]: r["kind"] for r in rows}
    assert kinds[fingerprint(CLUB_T)] == "community" and kinds[vkid] == "user"
    assert all(r["requests"] >= 1 for r in rows)


def test_tokens_without_a_pool_says_what_to_set(database_url, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    ran = cli("tokens")
    assert ran.code != 0 and "VK_ACCESS_TOKENS" in ran.err and "VK_ID_REFRESH_TOKEN" in ran.err
