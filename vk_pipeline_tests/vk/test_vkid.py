"""VK ID access tokens that refresh themselves: stored encrypted in real Postgres, rotated by one
process at a time, re-read by the others, refreshed at once on error 5; against the emulator's
`/oauth2/auth` over HTTP, with access tokens that live a few seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import psycopg
import pytest

from vk_pipeline.emulator import EmulatorServer
from vk_pipeline.resources import build_resources
from vk_pipeline.storage import PostgresResource
from vk_pipeline.testing.worlds import FAST_RATE
from vk_pipeline.vk import VKFatalError, fetch_wall
from vk_pipeline.vk.vkid import credential_fingerprint

CLIENT = "51234567"
DEVICE = "device-of-the-pipeline"
SEED = "vk2.a.seed-refresh-token-from-sign-in"
KEY = "a-long-random-secret-key-for-the-tests"

CHILD = textwrap.dedent(
    """
    import json, sys
    from vk_pipeline.resources import build_resources
    url, base, gid, n = sys.argv[1:5]
    vk = build_resources(database_url=url, vk_api_base_url=base, requests_per_second=1000,
                         rate_margin_seconds=0.0)["vk"]
    with vk.process_config_and_initialize_cm() as resolved, resolved.get_client() as client:
        print("ready", flush=True)
        sys.stdin.readline()
        for _ in range(int(n)):
            assert not hasattr(client.call("groups.getById", group_ids=gid), "code")
        print(json.dumps({"refreshes": client.vkid.refreshes, "rereads": client.vkid.rereads,
                          "errors": dict(client.stats.errors)}), flush=True)
    """
)


def vkid_env(server: EmulatorServer, seed: str = SEED) -> dict[str, str]:
    return {
        "VK_ID_REFRESH_TOKEN": seed,
        "VK_ID_CLIENT_ID": CLIENT,
        "VK_ID_DEVICE_ID": DEVICE,
        "VK_ID_URL": server.url,
        "VK_PIPELINE_SECRET_KEY": KEY,
    }


@pytest.fixture
def vkid_server(emulator_factory: Any) -> EmulatorServer:
    return emulator_factory(vkid_clients={CLIENT: SEED}, vkid_access_ttl=3, rate=FAST_RATE)


@pytest.fixture
def env(vkid_server: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = vkid_env(vkid_server)
    for name in ("VK_ACCESS_TOKEN", "VK_ACCESS_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def client_of(database_url: str, server: EmulatorServer) -> Any:
    PostgresResource(database_url=database_url, schema_name="vk").ensure_schema()
    vk = build_resources(
        database_url=database_url,
        vk_api_base_url=server.base_url,
        requests_per_second=FAST_RATE,
        rate_margin_seconds=0.0,
    )["vk"]
    return vk.process_config_and_initialize_cm()


def child(database_url: str, server: EmulatorServer, gid: int, n: int) -> subprocess.Popen[str]:
    env = {**os.environ, **vkid_env(server)}
    env.pop("VK_ACCESS_TOKEN", None)
    env.pop("VK_ACCESS_TOKENS", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, database_url, server.base_url, str(gid), str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate("go\n", timeout=120)
    assert proc.returncode == 0, out
    return json.loads(out.strip().splitlines()[-1])


def stored_rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT * FROM vk.vkid_credentials").fetchall()


def test_short_lived_tokens_refresh_across_two_processes(
    vkid_server: EmulatorServer, env: dict[str, str], database_url: str
) -> None:
    world = vkid_server.world
    gid = next(g for g in world.group_ids() if world.group_kind(g) == "open" and world.posts(g))
    with client_of(database_url, vkid_server) as vk, vk.get_client() as client:
        first = fetch_wall(client, -gid)
        assert first.error is None and len(first.posts) == len(world.posts(gid))
        time.sleep(3.2)  # the access token expired meanwhile
        again = fetch_wall(client, -gid)
        assert len(again.posts) == len(world.posts(gid))
        assert client.vkid.refreshes >= 2
        assert client.stats.errors.get("wall.get:5", 0) <= client.vkid.refreshes
    # A second process starts with the environment's refresh token, which is dead by now: it
    # works only with the rotated one the first process stored.
    proc = child(database_url, vkid_server, gid, 5)
    report = finish(proc)
    assert report["refreshes"] + report["rereads"] >= 1
    snapshot = vkid_server.stats()["vkid"]
    assert snapshot["refused"] == 0 and snapshot["refreshes"] >= 2
    # The stored tokens are encrypted: no token VK ID minted appears in the table.
    [row] = stored_rows(database_url)
    assert row[0] == credential_fingerprint(CLIENT, DEVICE)
    assert "vk2.a." not in repr(row)


def test_two_processes_refreshing_at_once_make_one_refresh(
    vkid_server: EmulatorServer, env: dict[str, str], database_url: str
) -> None:
    PostgresResource(database_url=database_url, schema_name="vk").ensure_schema()
    gid = vkid_server.world.group_ids()[0]
    procs = [child(database_url, vkid_server, gid, 3) for _ in range(2)]
    for proc in procs:  # released together: both need a token at the same moment
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["refreshes"] for r in reports) == [0, 1]
    assert sum(r["rereads"] for r in reports) == 1
    snapshot = vkid_server.stats()["vkid"]
    assert (snapshot["refreshes"], snapshot["refused"]) == (1, 0)  # no invalid refresh


def test_error_5_refreshes_at_once_and_the_request_goes_again(
    vkid_server: EmulatorServer, env: dict[str, str], database_url: str
) -> None:
    vkid_server.vkid.set_access_ttl(3600)
    gid = vkid_server.world.group_ids()[0]
    with client_of(database_url, vkid_server) as vk, vk.get_client() as client:
        client.call("groups.getById", group_ids=gid)
        [key] = [k for k, t in vkid_server.tokens().items() if t["vkid_client"] == CLIENT]
        vkid_server.expire_token(key=key)  # VK says "access_token has expired" from now on
        assert client.call("groups.getById", group_ids=gid)
        assert client.stats.errors["groups.getById:5"] == 1
        assert client.vkid.refreshes == 2


def test_a_refused_refresh_token_stops_clearly(
    vkid_server: EmulatorServer, env: dict[str, str], database_url: str
) -> None:
    vkid_server.vkid.revoke_refresh(CLIENT)
    with (
        client_of(database_url, vkid_server) as vk,
        vk.get_client() as client,
        pytest.raises(VKFatalError) as info,
    ):
        client.call("groups.getById", group_ids=1)
    message = str(info.value)
    assert "VK_ID_REFRESH_TOKEN" in message and "refresh_token is missing or invalid" in message
    assert SEED not in message
    # Every other process stops too (the refusal is stored), without asking VK ID again.
    with (
        client_of(database_url, vkid_server) as vk,
        vk.get_client() as client,
        pytest.raises(VKFatalError),
    ):
        client.call("groups.getById", group_ids=1)
    assert vkid_server.stats()["vkid"]["refused"] == 1


def test_every_entry_point_gets_the_credential_as_secrets(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """build_resources (Definitions, CLI, demo, dev, benchmarks) wires VK ID from the
    environment: the refresh token and the key as EnvVars resolved at launch, never values."""
    import dagster as dg

    monkeypatch.setenv("VK_SERVICE_RATE", "7")
    vk = build_resources()["vk"]
    assert vk.access_token == ""  # VK ID alone is a pool
    assert isinstance(vk.vk_id_refresh_token, dg.EnvVar)
    assert isinstance(vk.secret_key, dg.EnvVar)
    assert (vk.vk_id_client_id, vk.vk_id_device_id) == (CLIENT, DEVICE)
    assert vk.service_requests_per_second == 7
    assert SEED not in repr(vk) and KEY not in repr(vk)
    monkeypatch.setenv("VK_SERVICE_RATE", "fast")
    with pytest.raises(ValueError, match="VK_SERVICE_RATE"):
        build_resources()
