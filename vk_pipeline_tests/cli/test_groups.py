"""`groups check|add|list` against the emulator, real Postgres and a real instance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from vk_pipeline.automation import build_group_file_sensor
from vk_pipeline.emulator import DEMO_TOKEN, World
from vk_pipeline.jobs import crawl_job
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.testing.corpus import Cast, corpus
from vk_pipeline_tests.cli.conftest import cli

PROJECT_ROOT = Path(__file__).resolve().parents[2]


# -- groups check -----------------------------------------------------------------------------


def test_check_prints_file_line_reason_and_a_summary(env, small_world: World, tmp_path):
    rejects = corpus(small_world)[1]
    path = rejects.write(tmp_path)
    ran = cli("groups", "check", str(path))
    lines = ran.out.splitlines()
    assert ran.code == 1
    assert [ln.split(":", 2)[1] for ln in lines[:-1]] == [str(n) for n in sorted(rejects.rejected)]
    assert all(ln.startswith(f"{path}:") for ln in lines)
    assert (
        f"{len(rejects.groups)} groups" in lines[-1]
        and f"{len(rejects.rejected)} rejected" in lines[-1]
    )


def test_check_json_one_object_per_file(env, small_world: World, tmp_path):
    files = corpus(small_world)
    paths = [f.write(tmp_path) for f in files]
    ran = cli("groups", "check", "--json", *map(str, paths))
    objects = [json.loads(line) for line in ran.out.splitlines()]
    assert ran.code == 1
    assert [o["file"] for o in objects] == [str(p) for p in paths]
    for o, expected in zip(objects, files, strict=True):
        assert o["groups"] == expected.groups
        if not expected.sheets:
            assert sorted({r["line"] for r in o["rejected"]}) == sorted(expected.rejected)
        assert all({"line", "text", "reason"} <= set(r) for r in o["rejected"])
    assert "PNG" in objects[-1]["error"]


def test_check_registers_nothing(env: dg.DagsterInstance, small_world, tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(f"club{small_world.group_ids()[0]}\n")
    assert cli("groups", "check", str(path)).code == 0
    assert env.get_dynamic_partitions(GROUP_PARTITIONS_NAME) == []


def test_check_a_missing_file_is_one_line_and_nothing_is_asked(env, emulator, tmp_path):
    good = tmp_path / "a.txt"
    good.write_text("club100001\n")
    before = emulator.stats()["http_requests"]
    ran = cli("groups", "check", str(good), "/missing/file.txt", str(tmp_path))
    assert ran.code == 2 and ran.out == ""
    assert ran.err.splitlines() == [
        "error: /missing/file.txt: no such file",
        f"error: {tmp_path}: is a folder; name the files in it",
    ]
    assert emulator.stats()["http_requests"] == before


def test_check_a_file_that_is_not_text_is_reported_once(env, tmp_path):
    png = tmp_path / "photo.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    ran = cli("groups", "check", str(png))
    assert ran.code == 1
    [line] = ran.out.splitlines()
    assert line.startswith(f"{png}: not read:") and "PNG" in line


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


# -- groups add -------------------------------------------------------------------------------


def test_add_registers_and_the_sensor_loads(env: dg.DagsterInstance, small_world, tmp_path):
    c = Cast.of(small_world)
    (a, name_a), (b, _) = c.named[:2]
    path = tmp_path / "кофейни.txt"
    path.write_text(f"club{b}\nid3\n")
    ran = cli("groups", "add", str(path), f"@{name_a}", "no_such_group_zz")
    assert ran.code == 1  # id3 and the unknown name are rejected; the rest is registered
    assert "кофейни.txt: 1 groups (1 new" in ran.out
    assert "command line: 1 groups (1 new" in ran.out
    assert "2 new group(s) are partitions now" in ran.out
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


@pytest.mark.parametrize("missing", ["/missing/file.txt", "coffee.csv", "lists/кофейни"])
def test_add_a_path_that_does_not_exist_is_an_error_naming_it(
    env: dg.DagsterInstance, emulator, missing
):
    before = emulator.stats()["http_requests"]
    ran = cli("groups", "add", "club100001", missing)
    assert ran.code == 2
    assert ran.err == f"error: {missing}: no such file\n" and ran.out == ""
    assert env.get_dynamic_partitions(GROUP_PARTITIONS_NAME) == []
    assert emulator.stats()["http_requests"] == before  # not resolved as a name through VK


def test_add_a_negative_id_is_the_community(env: dg.DagsterInstance, small_world):
    gid = small_world.group_ids()[0]
    ran = cli("groups", "add", f"-{gid}")  # not taken for an option
    assert ran.code == 0, ran.err
    assert env.get_dynamic_partitions(GROUP_PARTITIONS_NAME) == [str(gid)]


def test_add_nothing_new_says_so(env, small_world):
    gid = small_world.group_ids()[0]
    assert cli("groups", "add", str(gid)).code == 0
    ran = cli("groups", "add", str(gid))
    assert ran.code == 0 and ran.out.splitlines()[-1] == "nothing new to register"


# -- groups list ------------------------------------------------------------------------------


def test_list_and_lists(env: dg.DagsterInstance, small_world, tmp_path, database_url):
    c = Cast.of(small_world)
    (a, _), (b, _) = c.named[:2]
    path = tmp_path / "cafes.txt"
    path.write_text(f"club{a}\nclub{b}\nclub{c.banned}\n")
    assert cli("groups", "add", str(path)).code == 0
    ran = cli("groups", "list", "--json")
    rows = {r["id"]: r for r in map(json.loads, ran.out.splitlines())}
    assert ran.code == 0 and set(rows) == {a, b, c.banned}
    assert rows[c.banned]["status"] == "banned" and rows[a]["lists"] == ["cafes"]
    assert all(r["tracked"] and r["valid"] for r in rows.values())
    assert "cafes\t3 groups" in cli("groups", "list", "--lists").out


def test_list_shows_every_partition_the_ui_shows(
    env: dg.DagsterInstance, small_world, database_url
):
    """Partitions added in the UI (or by `make dev`) have no registry row; keys that are no
    group id are listed too, marked invalid, escaped so they cannot split or forge a line."""
    c = Cast.of(small_world)
    (a, name_a), (b, _) = c.named[:2]
    bad = ["football_perm", "-5", "line\nbreak", "<script>alert(1)</script>", ""]
    env.add_dynamic_partitions(GROUP_PARTITIONS_NAME, [str(a), str(b), *bad])
    cli("groups", "list")  # migrates the schema
    with psycopg.connect(database_url) as conn:  # as if the groups asset had stored `a`
        conn.execute(
            "INSERT INTO vk.groups (id, screen_name, name, status) VALUES (%s, %s, 'Кафе ☕', 'open')",
            (a, name_a),
        )
    ran = cli("groups", "list", "--json")
    rows = [json.loads(line) for line in ran.out.splitlines()]
    assert [r["key"] for r in rows] == [str(a), str(b), *bad]
    assert rows[0]["screen_name"] == name_a and rows[0]["name"] == "Кафе ☕"
    assert rows[1]["status"] == "not loaded yet"
    assert all(r["valid"] is False and r["id"] is None for r in rows[2:])

    text = cli("groups", "list").out.splitlines()
    assert len(text) == 2 + len(bad) + 1  # no key split a line
    assert text[0].startswith(f"{a}\t{name_a}\tactive\ttracked")
    assert text[4].startswith("'line\\nbreak'\t\tinvalid key")
    assert text[6].startswith("''\t\tinvalid key")
    assert (
        text[-1]
        == "2 groups tracked, 5 invalid partition key(s) (remove one with `groups remove KEY`)"
    )
