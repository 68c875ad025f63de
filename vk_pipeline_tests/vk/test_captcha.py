"""Captcha (error 14): the token is set aside in the shared budget for a while, with a message
naming its fingerprint and the URL a person can use; the run goes on with the other tokens, or
stops clearly when none is left; no retry storm. Emulator over HTTP, real Postgres."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from vk_pipeline.budget.postgres import PostgresLimiter
from vk_pipeline.emulator import EmulatorServer
from vk_pipeline.storage import PostgresResource
from vk_pipeline.testing.worlds import FAST_RATE
from vk_pipeline.vk import VKClient, VKFatalError, fetch_wall, fingerprint

A = "captcha-token-a-secret"
B = "captcha-token-b-secret"


@pytest.fixture
def limiter(database_url: str) -> Any:
    PostgresResource(database_url=database_url, schema_name="vk").ensure_schema()
    lim = PostgresLimiter(database_url, "vk", FAST_RATE, margin=0.0)
    yield lim
    lim.close()


def client(server: EmulatorServer, limiter: PostgresLimiter, notes: list[str]) -> VKClient:
    return VKClient(
        access_token=[A, B],
        api_base_url=server.base_url,
        limiter=limiter,
        warn=notes.append,
        backoff_base=0.01,
        backoff_cap=0.05,
        captcha_hold_seconds=600,
    )


def test_captcha_sets_one_token_aside_and_the_run_goes_on(
    emulator_factory: Any, limiter: PostgresLimiter, database_url: str
) -> None:
    server = emulator_factory(tokens=[A, B])
    server.require_captcha(A, seconds=3600)
    world = server.world
    gid = next(g for g in world.group_ids() if world.group_kind(g) == "open" and world.posts(g))
    notes: list[str] = []
    with client(server, limiter, notes) as c:
        result = fetch_wall(c, -gid)
        for _ in range(10):
            c.call("groups.getById", group_ids=gid)
    assert len(result.posts) == len(world.posts(gid))
    assert server.stats()["errors"].get("14", 0) == 1  # asked once, never again
    [note] = [n for n in notes if "captcha" in n]
    assert fingerprint(A) in note and "not_robot_captcha" in note and A not in note
    with psycopg.connect(database_url) as conn:
        [(fp, reason)] = conn.execute("SELECT token_fp, reason FROM vk.token_holds").fetchall()
    assert fp == fingerprint(A) and "not_robot_captcha" in reason
    # Another process sharing the budget does not try the held token at all.
    server.reset_stats()
    with client(server, limiter, []) as other:
        for _ in range(5):
            other.call("groups.getById", group_ids=gid)
    assert server.stats()["errors"].get("14", 0) == 0
    assert fingerprint(A) not in server.stats()["by_token"]


def test_captcha_on_every_token_stops_clearly(
    emulator_factory: Any, limiter: PostgresLimiter
) -> None:
    server = emulator_factory(tokens=[A, B])
    server.require_captcha(A, seconds=3600)
    server.require_captcha(B, seconds=3600)
    with client(server, limiter, []) as c, pytest.raises(VKFatalError) as info:
        c.call("groups.getById", group_ids=server.world.group_ids()[0])
    message = str(info.value)
    assert "set aside" in message and fingerprint(A) in message and fingerprint(B) in message
    assert "not_robot_captcha" in message
    assert server.stats()["http_requests"] == 2  # each token asked once: no retry storm
