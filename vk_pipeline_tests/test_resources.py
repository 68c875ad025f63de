"""One wiring for every entry point: the command line's client draws on the shared Postgres
budget with the whole token pool from the environment, like a run's."""

from __future__ import annotations

import pytest

from vk_pipeline.budget.postgres import PostgresLimiter
from vk_pipeline.resources import build_resources, vk_client
from vk_pipeline.vk import fingerprint

TOKENS = ["resources-token-one", "resources-token-two"]


@pytest.mark.parametrize("pool_var", ["VK_ACCESS_TOKENS", "VK_ACCESS_TOKEN"])
def test_a_client_outside_a_run_has_the_pool_and_the_shared_budget(
    monkeypatch, emulator_factory, postgres_resource, pool_var
):
    server = emulator_factory(tokens=TOKENS)
    monkeypatch.delenv("VK_ACCESS_TOKENS", raising=False)
    monkeypatch.setenv(pool_var, ",".join(TOKENS) if pool_var.endswith("S") else TOKENS[0])
    monkeypatch.setenv("VK_API_BASE_URL", server.base_url)
    monkeypatch.setenv("DATABASE_URL", postgres_resource.resolved_url())
    expected = TOKENS if pool_var.endswith("S") else TOKENS[:1]
    gid = server.world.group_ids()[0]
    with vk_client() as client:
        assert isinstance(client.limiter, PostgresLimiter)
        assert sorted(client.tokens.fingerprints) == sorted(fingerprint(t) for t in expected)
        for _ in range(4):
            client.call("groups.getById", group_ids=gid)
    used = dict(postgres_resource.execute("SELECT token_fp, requests FROM vk.rate_budget"))
    assert set(used) <= {fingerprint(t) for t in expected}
    assert sum(used.values()) >= 4


def test_the_token_is_never_a_value_in_the_resources(monkeypatch):
    monkeypatch.setenv("VK_ACCESS_TOKEN", "a-secret-token-value")
    monkeypatch.delenv("VK_ACCESS_TOKENS", raising=False)
    resources = build_resources()
    assert "a-secret-token-value" not in repr(resources["vk"])
    assert resources["vk"].access_token == "VK_ACCESS_TOKEN"  # the variable's name
