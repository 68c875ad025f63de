"""The VK token never leaves the environment: after a real `dagster job execute` with faults, and
after one that fails on error 5, its text is searched for in stdout/stderr, the Dagster database
(runs and their config, event logs with metadata and error messages), compute logs and every
other file under DAGSTER_HOME, and every table of the data database."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from vk_pipeline.emulator import FaultSpec, World, WorldSpec
from vk_pipeline.jobs import crawl_job
from vk_pipeline.local import sqlalchemy_postgres_url
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.testing.crawl import range_tags
from vk_pipeline.testing.databases import create_database, drop_database
from vk_pipeline.vk import fingerprint

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "vk1.a.S3CRET-token-text-that-must-never-leak-0123456789"
FAULTS = FaultSpec(
    http_5xx=0.03, drop=0.03, non_json=0.03, truncated=0.03, error_1=0.03, error_6=0.03
)


def database_text(url: str) -> str:
    """Every row of every user table, as text."""
    parts: list[str] = []
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        for schema, table in tables:
            rows = conn.execute(
                sql.SQL("SELECT t::text FROM {} AS t").format(sql.Identifier(schema, table))
            ).fetchall()
            parts.extend(r[0] for r in rows)
    return "\n".join(parts)


def files_text(root: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file()
    )


@pytest.fixture
def dagster_home(tmp_path: Path, pg_admin_url: str):
    url = create_database(pg_admin_url, prefix="vkt_dagster")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    try:
        yield home, url
    finally:
        drop_database(pg_admin_url, url)


def run_job(home: Path, dagster_url: str, data_url: str, base_url: str, keys: list[str]):
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_POSTGRES_URL": sqlalchemy_postgres_url(dagster_url),
        "DATABASE_URL": data_url,
        "VK_API_BASE_URL": base_url,
        "VK_ACCESS_TOKEN": TOKEN,
    }
    env.pop("VK_ACCESS_TOKENS", None)
    tags = range_tags(keys)
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            *("job", "execute", "-m", "vk_pipeline.definitions", "-j", crawl_job.name),
            *("--tags", json.dumps(tags)),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_token_appears_nowhere(emulator_factory, dagster_home, database_url):
    home, dagster_url = dagster_home
    world = World(WorldSpec(seed=41, groups=2, posts=120, comments=1_500, special_groups=False))
    keys = [str(g) for g in world.group_ids()]
    os.environ["DAGSTER_POSTGRES_URL"] = sqlalchemy_postgres_url(dagster_url)
    try:
        instance = dg.DagsterInstance.from_config(str(home))
        instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, keys)
    finally:
        del os.environ["DAGSTER_POSTGRES_URL"]

    faulty = emulator_factory(world=world, tokens=[TOKEN])
    faulty.set_faults("*", FAULTS)
    with_faults = run_job(home, dagster_url, database_url, faulty.base_url, keys)
    assert with_faults.returncode == 0, with_faults.stderr[-3000:]
    assert sum(faulty.stats()["faults"].values()) > 0

    refusing = emulator_factory(world=world, tokens=["some-other-token"])
    rejected = run_job(home, dagster_url, database_url, refusing.base_url, keys)
    assert rejected.returncode != 0
    assert refusing.stats()["errors"].get("5", 0) > 0

    places = {
        "stdout and stderr": "\n".join(
            [with_faults.stdout, with_faults.stderr, rejected.stdout, rejected.stderr]
        ),
        "Dagster database (runs, run config, event logs, metadata, errors)": database_text(
            dagster_url
        ),
        "files under DAGSTER_HOME (compute logs)": files_text(home),
        "data database (rows, rate budget, quotas)": database_text(database_url),
    }
    assert list(home.rglob("*.err")) or list(home.rglob("*.out")), "no compute logs captured"
    hits = {place: text.count(TOKEN) for place, text in places.items()}
    print(f"\ntoken search: {hits}")
    assert hits == dict.fromkeys(places, 0)
    # The search would have found it: the failure names the token by its fingerprint.
    assert (
        fingerprint(TOKEN)
        in places["Dagster database (runs, run config, event logs, metadata, errors)"]
    )
