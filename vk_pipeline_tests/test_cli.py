"""`python -m vk_pipeline groups ...` against the emulator, real Postgres and a real instance."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from vk_pipeline.automation import build_group_file_sensor
from vk_pipeline.cli import main
from vk_pipeline.emulator import DEMO_TOKEN, World
from vk_pipeline.jobs import crawl_job
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.testing.corpus import Cast, corpus

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def env(monkeypatch, emulator, database_url) -> Iterator[dg.DagsterInstance]:
    """What a user's shell has: VK endpoint and token, DATABASE_URL, DAGSTER_HOME."""
    monkeypatch.setenv("VK_API_BASE_URL", emulator.base_url)
    monkeypatch.setenv("VK_ACCESS_TOKEN", DEMO_TOKEN)
    monkeypatch.setenv("DATABASE_URL", database_url)
    with dg.instance_for_test() as instance:  # sets DAGSTER_HOME for the CLI to find
        yield instance


def test_check_prints_file_line_reason_and_a_summary(env, small_world: World, tmp_path):
    rejects = corpus(small_world)[1]
    path = rejects.write(tmp_path)
    code, out, _ = cli("groups", "check", str(path))
    lines = out.splitlines()
    assert code == 1
    assert [ln.split(":", 2)[1] for ln in lines[:-1]] == [str(n) for n in sorted(rejects.rejected)]
    assert all(ln.startswith(f"{path}:") for ln in lines)
    assert (
        f"{len(rejects.groups)} groups" in lines[-1]
        and f"{len(rejects.rejected)} rejected" in lines[-1]
    )


def test_check_json_one_object_per_file(env, small_world: World, tmp_path):
    files = corpus(small_world)
    paths = [f.write(tmp_path) for f in files]
    code, out, _ = cli("groups", "check", "--json", *map(str, paths))
    objects = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert [o["file"] for o in objects] == [str(p) for p in paths]
    for o, expected in zip(objects, files, strict=True):
        assert o["groups"] == expected.groups
        if not expected.sheets:
            assert sorted({r["line"] for r in o["rejected"]}) == sorted(expected.rejected)
        assert all({"line", "text", "reason"} <= set(r) for r in o["rejected"])
    assert "PNG" in objects[-1]["error"]


def test_check_registers_nothing(env: dg.DagsterInstance, small_world, tmp_path, database_url):
    path = tmp_path / "a.txt"
    path.write_text(f"club{small_world.group_ids()[0]}\n")
    assert cli("groups", "check", str(path))[0] == 0
    assert env.get_dynamic_partitions(GROUP_PARTITIONS_NAME) == []


def test_the_module_entry_point(emulator, tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("club100001\nid1\n")
    environment = {
        **os.environ,
        "VK_API_BASE_URL": emulator.base_url,
        "VK_ACCESS_TOKEN": DEMO_TOKEN,
    }
    done = subprocess.run(
        [sys.executable, "-m", "vk_pipeline", "groups", "check", "--json", str(path)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=PROJECT_ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["groups"] == [100001]
    assert report["rejected"][0]["line"] == 2


def test_add_registers_and_the_sensor_loads(env: dg.DagsterInstance, small_world, tmp_path):
    c = Cast.of(small_world)
    (a, name_a), (b, _) = c.named[:2]
    path = tmp_path / "кофейни.txt"
    path.write_text(f"club{b}\nid3\n")
    code, out, _ = cli("groups", "add", str(path), f"@{name_a}", "no_such_group_zz")
    assert code == 1  # id3 and the unknown name are rejected; the rest is registered
    assert "кофейни.txt: 1 groups (1 new" in out
    assert "command line: 1 groups (1 new" in out
    assert env.get_dynamic_partitions(GROUP_PARTITIONS_NAME) == [str(b), str(a)]

    # The sensor reports what the CLI registered and starts the first loads.
    drops = tmp_path / "drops"
    drops.mkdir()
    sensor = build_group_file_sensor(folder=drops, settle=0)
    from vk_pipeline.definitions import defs as production
    from vk_pipeline.resources import build_resources

    resources = build_resources()  # the environment's database, VK endpoint and token
    defs = dg.Definitions(
        assets=production.assets, jobs=[crawl_job], sensors=[sensor], resources=resources
    )
    with dg.build_sensor_context(instance=env, definitions=defs, resources=resources) as context:
        result = sensor(context)
    assert {r.tags["vk_pipeline/trigger"] for r in result.run_requests} == {"groups_add"}
    assert sorted(
        r.tags["dagster/asset_partition_range_start"] for r in result.run_requests
    ) == sorted([str(a), str(b)])


def test_list_and_remove(env: dg.DagsterInstance, small_world, tmp_path, database_url):
    c = Cast.of(small_world)
    (a, name_a), (b, _) = c.named[:2]
    path = tmp_path / "cafes.txt"
    path.write_text(f"club{a}\nclub{b}\nclub{c.banned}\n")
    assert cli("groups", "add", str(path))[0] == 0
    with psycopg.connect(database_url) as conn:  # as if the groups asset had stored a row
        conn.execute("INSERT INTO vk.groups (id, status) VALUES (%s, 'open')", (a,))

    code, out, _ = cli("groups", "list", "--json")
    rows = {r["id"]: r for r in map(json.loads, out.splitlines())}
    assert code == 0 and set(rows) == {a, b, c.banned}
    assert rows[c.banned]["status"] == "banned" and rows[a]["lists"] == ["cafes"]
    assert all(r["tracked"] for r in rows.values())
    assert "cafes\t3 groups" in cli("groups", "list", "--lists")[1]

    code, out, _ = cli("groups", "remove", f"vk.com/{name_a}")
    assert code == 0 and "stopped tracking 1 group(s)" in out
    assert str(a) not in env.get_dynamic_partitions(GROUP_PARTITIONS_NAME)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM vk.groups WHERE id = %s", (a,)).fetchone() == (1,)
    listed = {
        r["id"]: r
        for r in map(json.loads, cli("groups", "list", "--json", "--all")[1].splitlines())
    }
    assert listed[a]["removed_at"] is not None and not listed[a]["tracked"]
    assert cli("groups", "remove", "no_such_group_zz")[0] == 1


def test_missing_configuration_is_explained(monkeypatch, tmp_path):
    monkeypatch.delenv("VK_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("VK_ACCESS_TOKENS", raising=False)
    path = tmp_path / "a.txt"
    path.write_text("club1\n")
    code, _, err = cli("groups", "check", str(path))
    assert code == 2 and "VK_ACCESS_TOKEN (or VK_ACCESS_TOKENS) is not set" in err


def test_search_is_dispatched(capsys):
    if importlib.util.find_spec("vk_pipeline.search") is None:
        code, _, err = cli("search", "кофе")
        assert code == 2 and "search is not available" in err
        return
    try:
        code = cli("search", "--help")[0]
    except SystemExit as exit_info:  # a search module that lets argparse exit
        code = exit_info.code
    assert code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and "{groups,search}" not in out  # search's own help, not ours
