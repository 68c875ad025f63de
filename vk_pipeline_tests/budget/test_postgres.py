"""The rate budget in Postgres: one budget per token across processes, penalties and quotas
shared, against real PostgreSQL and the emulator over HTTP."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import textwrap

from vk_pipeline.budget.postgres import PostgresLimiter
from vk_pipeline.emulator import World, WorldSpec
from vk_pipeline.resources import build_resources
from vk_pipeline.storage import PostgresResource
from vk_pipeline.vk import fingerprint

TOKEN = "shared-budget-token-secret"

WORKER = textwrap.dedent(
    """
    import json, sys
    from vk_pipeline.resources import build_resources
    url, base, token, gid, n = sys.argv[1:6]
    # A wider margin than the default: a test machine under load delays wake-ups, and a
    # delayed send arrives closer to the next ones than its reservation was.
    vk = build_resources(database_url=url, tokens=token, vk_api_base_url=base,
                         requests_per_second=5, rate_margin_seconds=0.25)["vk"]
    with vk.get_client() as client:
        # A barrier: ready, then wait for the test to release every worker at once.
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range(int(n)):
            client.call("groups.getById", group_ids=gid)
        print(json.dumps({"retries": client.stats.retries}))
    """
)


def said_ready(worker: subprocess.Popen[str]) -> bool:
    """Whether the worker printed "ready"; waiting at most two minutes only guards a hang."""
    assert worker.stdout is not None
    readable, _, _ = select.select([worker.stdout], [], [], 120)
    return bool(readable) and worker.stdout.readline() == "ready\n"


def test_three_processes_on_one_token_never_overrun_it(emulator_factory, postgres_resource):
    server = emulator_factory(rate=5, tokens=[TOKEN])
    gid = server.world.group_ids()[0]
    url = postgres_resource.resolved_url()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, server.base_url, TOKEN, str(gid), "12"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        # Start all three together, once each is ready to send: they contend from the first call.
        for p in procs:
            assert said_ready(p), p.communicate(timeout=60)[1][-2000:]
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outs]
    stats = server.stats()
    assert stats["errors"].get("6", 0) == 0, stats["errors"]
    assert stats["http_requests"] == 36
    assert all(json.loads(out)["retries"] == 0 for out, _ in outs)
    [(requests,)] = postgres_resource.execute(
        "SELECT requests FROM vk.rate_budget WHERE token_fp = %s", (fingerprint(TOKEN),)
    )
    # Every send drew from the shared budget; a slot a late sleeper gave up counts there too.
    assert requests >= 36


def limiter(resource: PostgresResource, rate: float = 3) -> PostgresLimiter:
    # A fresh limiter is what another process would hold: nothing shared but the database.
    return PostgresLimiter(resource.resolved_url(), "vk", rate, margin=0.0, sleep=lambda s: None)


def waits(resource: PostgresResource, n: int, keys: list[str], rate: float = 3) -> list[str]:
    lim = limiter(resource, rate)
    try:
        return [lim.acquire(keys) for _ in range(n)]
    finally:
        lim.close()


def test_reservations_queue_up_behind_each_other(postgres_resource):
    a, b = limiter(postgres_resource), limiter(postgres_resource)
    slept: list[float] = []
    a._sleep = slept.append
    b._sleep = slept.append
    try:
        for _ in range(3):
            a.acquire(["k"])
        b.acquire(["k"])  # the fourth send in the window waits for the first to leave it
    finally:
        a.close()
        b.close()
    assert len(slept) == 1 and 0.9 < slept[0] <= 1.0


def test_the_token_that_can_send_soonest_is_chosen(postgres_resource):
    used = waits(postgres_resource, 6, ["x", "y"])
    assert sorted(used) == ["x", "x", "x", "y", "y", "y"]


def test_a_penalty_holds_back_every_process_on_that_token(postgres_resource):
    a, b = limiter(postgres_resource), limiter(postgres_resource)
    slept: list[float] = []
    b._sleep = slept.append
    try:
        a.penalize("p", 2.0)
        assert b.acquire(["p", "q"]) == "q"  # another token is not held back
        b.acquire(["p"])
    finally:
        a.close()
        b.close()
    assert slept and 1.5 < slept[-1] <= 2.0


def test_a_spent_quota_is_seen_by_other_processes_until_it_resets(postgres_resource):
    a, b = limiter(postgres_resource), limiter(postgres_resource)
    try:
        a.exhaust("t1", "wall.get", 3600, "error 29: Rate limit reached")
        assert b.acquire(["t1", "t2"], {"wall.get"}) == "t2"
        assert b.acquire(["t1"], {"wall.get"}) is None
        assert b.acquire(["t1"], {"wall.getComments"}) == "t1"
        assert 3500 < b.quota_resets(["t1"], "wall.get") <= 3600
        assert b.quota_resets(["t1", "t2"], "wall.get") is None
        a.exhaust("t3", "wall.get", -1, "already reset")
        assert b.acquire(["t3"], {"wall.get"}) == "t3"
    finally:
        a.close()
        b.close()
    [(reason,)] = postgres_resource.execute(
        "SELECT reason FROM vk.token_quotas WHERE token_fp = 't1'"
    )
    assert "29" in reason


def test_the_resource_wires_the_budget_into_the_client(emulator_factory, postgres_resource):
    world = World(WorldSpec(seed=3, groups=2, posts=50, comments=100, special_groups=False))
    server = emulator_factory(world=world, rate=20, tokens=[TOKEN])
    vk = build_resources(
        database_url=postgres_resource.resolved_url(),
        tokens=TOKEN,
        vk_api_base_url=server.base_url,
        requests_per_second=20,
    )["vk"]
    with vk.get_client() as client:
        for gid in world.group_ids():
            assert client.call("groups.getById", group_ids=gid)
    [(requests,)] = postgres_resource.execute(
        "SELECT requests FROM vk.rate_budget WHERE token_fp = %s", (fingerprint(TOKEN),)
    )
    # Each call drew from the shared budget (a slot a late sleeper gave up counts there too).
    assert requests >= len(world.group_ids())
