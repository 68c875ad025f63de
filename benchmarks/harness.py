"""What the pipeline benchmarks share: a scratch database, the production resources pointed at an
emulator, a ranged crawl through Dagster, and the comparison with the emulator's truth."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import psycopg
from psycopg import sql

from vk_pipeline.assets import vk_assets
from vk_pipeline.budget import PostgresRateBudget, close_limiters
from vk_pipeline.emulator import DEMO_TOKEN, World, WorldSpec
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.storage import (
    PostgresIOManager,
    PostgresResource,
    close_pools,
    resolve_database_url,
    with_dbname,
)
from vk_pipeline.vk import VKResource

RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def scratch_database(admin_url: str | None, prefix: str = "vk_bench") -> Iterator[str]:
    """A fresh database on the server of `admin_url` (default: the embedded one), dropped after."""
    admin = resolve_database_url(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_dbname(admin, name)
    finally:
        close_limiters()
        close_pools()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def resources(url: str, base_url: str, token: str = DEMO_TOKEN, **vk: Any) -> dict[str, Any]:
    """The production wiring (Postgres rate budget included) against `base_url`."""
    postgres = PostgresResource(database_url=url)
    return {
        "vk": VKResource(
            access_token=token,
            api_base_url=base_url,
            budget=PostgresRateBudget(postgres=postgres),
            **vk,
        ),
        "postgres": postgres,
        "io_manager": PostgresIOManager(postgres=postgres),
    }


def as_of(world: World) -> str:
    return datetime.fromtimestamp(world.now, UTC).isoformat()


def crawl(
    instance: dg.DagsterInstance,
    res: dict[str, Any],
    keys: list[str],
    config: dict[str, Any] | None = None,
) -> tuple[dg.ExecuteInProcessResult, float]:
    """One ranged run over `keys`; its result and wall seconds."""
    known = set(instance.get_dynamic_partitions(GROUP_PARTITIONS_NAME))
    instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, [k for k in keys if k not in known])
    run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    if config:
        run_config["ops"] = {n: {"config": config} for n in ("posts", "comments")}
    started = time.monotonic()
    result = dg.materialize(
        vk_assets,
        instance=instance,
        resources=res,
        run_config=run_config,
        tags=dict(zip(RANGE, (keys[0], keys[-1]), strict=True)),
        raise_on_error=False,
    )
    return result, time.monotonic() - started


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    return {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }


def stored(url: str) -> tuple[dict[tuple[int, int], str], dict[tuple[int, int], str]]:
    """Live posts and comments in the database: (group, id) → text."""
    with psycopg.connect(url) as conn:
        posts = {
            (g, i): t
            for g, i, t in conn.execute(
                "SELECT group_id, id, text FROM vk.posts WHERE NOT is_deleted"
            ).fetchall()
        }
        comments = {
            (-o, i): t
            for o, i, t in conn.execute(
                "SELECT owner_id, id, text FROM vk.comments WHERE NOT is_deleted"
            ).fetchall()
        }
    return posts, comments


def truth(world: World, groups: list[int] | None = None):
    gids = groups if groups is not None else world.group_ids()
    posts = {(g, p["id"]): p["text"] for g in gids for p in world.posts(g)}
    comments = {
        (g, c["id"]): c["text"]
        for g in gids
        for p in world.posts(g)
        for c in world.comments(g, p["id"])
        if not c.get("deleted")
    }
    return posts, comments


def matches_truth(world: World, url: str, groups: list[int] | None = None) -> bool:
    """Live posts and comments (replies included) with their texts, exactly."""
    return stored(url) == truth(world, groups)


def duplicates(url: str) -> int:
    """Rows stored twice under one key (impossible with the primary keys; checked anyway)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) - count(DISTINCT (owner_id, id)) FROM vk.comments)"
            " + (SELECT count(*) - count(DISTINCT (owner_id, id)) FROM vk.posts)"
        ).fetchone()
    return int(row[0]) if row else 0


class EmulatorProcess:
    """The emulator in a process of its own (`python -m vk_pipeline.emulator`), so the clock it
    stamps arrivals with is not held up by a crawl's work in the benchmark's process."""

    def __init__(self, spec: WorldSpec, *, rate: float, tokens: list[str] | None = None) -> None:
        self.spec = spec
        self.port = free_port()
        args = [
            *(sys.executable, "-m", "vk_pipeline.emulator", "--port", str(self.port)),
            *("--seed", str(spec.seed), "--rate", str(rate), "--groups", str(spec.groups)),
            *("--posts", str(spec.posts), "--comments", str(spec.comments)),
            *(() if spec.special_groups else ("--no-special-groups",)),
        ]
        env = {**os.environ, "VK_EMULATOR_TOKENS": ",".join(tokens or [DEMO_TOKEN])}
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "serving" in line:
                break
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/method"

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_emulator/stats", timeout=30).json()

    def reset_stats(self) -> None:
        httpx.post(f"{self.url}/_emulator/reset", json={}, timeout=30).raise_for_status()

    def advance(self, world: World, **changes: float) -> dict[str, Any]:
        """Move the served world and `world` (a copy of the same spec) alike; the summary."""
        response = httpx.post(f"{self.url}/_emulator/advance", json=changes, timeout=300)
        response.raise_for_status()
        summary = world.advance(**changes)
        assert summary["now"] == response.json()["now"]
        return summary

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def crawl_process(
    url: str, base_url: str, world: World, keys: list[str], *, rate: float, tokens: list[str]
) -> subprocess.Popen:
    """A ranged crawl in a process of its own (vk_pipeline_tests.assets.crawl_child)."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "vk_pipeline_tests.assets.crawl_child"),
            *(url, base_url, as_of(world), *keys, "--rate", str(rate)),
            *("--tokens", ",".join(tokens)),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
