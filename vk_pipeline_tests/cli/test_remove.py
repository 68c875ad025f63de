"""`groups remove`: exactly what was named, shown first, and nothing when anything is unclear."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from vk_pipeline.emulator import World
from vk_pipeline.local import demo_world
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.testing.corpus import Cast
from vk_pipeline_tests.cli.conftest import cli

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def partitions(instance: dg.DagsterInstance) -> list[str]:
    return instance.get_dynamic_partitions(GROUP_PARTITIONS_NAME)


def registered(database_url: str) -> dict[int, bool]:
    """group id -> removed, as the registry holds them."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT group_id, removed_at IS NOT NULL FROM vk.registered_groups")
        return dict(rows.fetchall())


@pytest.fixture
def demo_env(monkeypatch, emulator_factory, database_url, env):
    """`make dev`'s world: its groups registered as partitions, the way `make dev` does (no
    registry rows), on an emulator serving that world."""
    world = World(demo_world())
    server = emulator_factory(world=world)
    monkeypatch.setenv("VK_API_BASE_URL", server.base_url)
    env.add_dynamic_partitions(GROUP_PARTITIONS_NAME, [str(g) for g in world.group_ids()])
    return env, world


def test_a_key_typed_in_the_ui_is_removed_as_that_key_not_the_group_of_that_name(
    demo_env, database_url
):
    """The bug: `groups remove football_perm` removed group 100002. In the demo world
    `football_perm` is 100002's screen name, so resolving the word through VK (what the command
    did, never looking at the partitions) rightly answered 100002."""
    instance, world = demo_env
    assert world.group(100002)["screen_name"] == "football_perm"
    instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, ["football_perm"])

    ran = cli("groups", "remove", "--yes", "football_perm")
    assert ran.code == 0, ran.err
    assert "football_perm\tpartition key that is not a group id" in ran.out
    assert "stopped tracking 0 group(s), removed 1 partition key(s)" in ran.out
    assert partitions(instance) == [str(g) for g in world.group_ids()]  # 100002 still there
    assert registered(database_url) == {}  # and no row was made for anything


def test_the_screen_name_of_a_tracked_group_removes_that_group_and_shows_it(demo_env, database_url):
    instance, _ = demo_env
    ran = cli("groups", "remove", "--yes", "vk.com/football_perm")
    assert ran.code == 0, ran.err
    assert "  100002\tfootball_perm\tФутбол Перми" in ran.out.splitlines()
    assert "100002" not in partitions(instance)
    assert registered(database_url) == {100002: True}


@pytest.mark.parametrize(
    "key", ["-5", "line\nbreak", "<script>alert(1)</script>", "1; DROP TABLE vk.posts", ""]
)
def test_keys_that_are_no_group_id_are_removed_by_their_exact_key(
    env: dg.DagsterInstance, small_world, database_url, key
):
    gid = small_world.group_ids()[0]
    env.add_dynamic_partitions(GROUP_PARTITIONS_NAME, [str(gid), "5", key])
    ran = cli("groups", "remove", "--yes", key)
    assert ran.code == 0, ran.err
    assert partitions(env) == [str(gid), "5"]  # `-5` is not group 5
    assert registered(database_url) == {}  # no row for 5, or for anything


def test_an_unknown_name_refuses_the_whole_command(env: dg.DagsterInstance, small_world):
    c = Cast.of(small_world)
    (a, name_a), (b, _) = c.named[:2]
    env.add_dynamic_partitions(GROUP_PARTITIONS_NAME, [str(a), str(b)])
    ran = cli("groups", "remove", "--yes", str(b), name_a, "no_such_group_zz", "vk.com/id1")
    assert ran.code == 1
    assert ran.err.splitlines() == [  # in the order of the arguments
        "error: no_such_group_zz: no partition key of that name, and VK knows no community "
        "with the address 'no_such_group_zz'",
        "error: vk.com/id1: no partition key of that name, and 'vk.com/id1' is a user's "
        "profile, not a community",
        "error: nothing was removed",
    ]
    assert partitions(env) == [str(a), str(b)]


def test_a_name_that_names_two_groups_is_ambiguous(
    env: dg.DagsterInstance, small_world, database_url
):
    """A screen name we recorded for one group (the registry) and later stored for another (the
    groups asset: VK gave the address to another community): which one is meant is unclear."""
    c = Cast.of(small_world)
    (a, name_a), (b, _) = c.named[:2]
    assert cli("groups", "add", str(a), str(b)).code == 0
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO vk.groups (id, screen_name, status) VALUES (%s, %s, 'open')", (b, name_a)
        )
    ran = cli("groups", "remove", "--yes", name_a)
    assert ran.code == 1
    assert f"the address {name_a!r} names groups {min(a, b)}, {max(a, b)}" in ran.err
    assert sorted(partitions(env)) == sorted([str(a), str(b)])


def test_a_group_not_tracked_is_a_note_not_a_removal(env: dg.DagsterInstance, database_url):
    ran = cli("groups", "remove", "--yes", "club100003")
    assert ran.code == 0 and ran.out == "nothing to remove\n"
    assert "group 100003 is not tracked" in ran.err
    assert registered(database_url) == {}


def test_without_a_terminal_it_needs_yes(env: dg.DagsterInstance, small_world):
    gid = small_world.group_ids()[0]
    env.add_dynamic_partitions(GROUP_PARTITIONS_NAME, [str(gid)])
    ran = cli("groups", "remove", str(gid), input="y\n")
    assert ran.code == 2
    assert ran.out.startswith("to stop tracking (1):\n")
    assert ran.err == (
        "error: stdin is not a terminal, so there is no one to ask: add --yes to remove these\n"
    )
    assert partitions(env) == [str(gid)]


def _read_until(fd: int, marker: bytes, timeout: float = 120) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no {marker!r} within {timeout} s; got {seen!r}"
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other end closed
            chunk = b""
        if not chunk:
            break
        seen += chunk
    return seen


@pytest.mark.parametrize(("answer", "removed"), [("n", False), ("y", True)])
def test_on_a_terminal_it_shows_what_goes_and_asks(
    env: dg.DagsterInstance, small_world, answer, removed
):
    gid = small_world.group_ids()[0]
    env.add_dynamic_partitions(GROUP_PARTITIONS_NAME, [str(gid), "football_perm"])
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vk_pipeline", "groups", "remove", str(gid), "football_perm"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=dict(os.environ),  # DAGSTER_HOME of this test's instance, DATABASE_URL, VK
        cwd=PROJECT_ROOT,
    )
    os.close(follower)
    try:
        shown = _read_until(leader, b"Remove them? [y/N]: ").decode()
        os.write(leader, f"{answer}\n".encode())
        rest = _read_until(leader, b"\n" * 1000).decode()  # to the end
        assert proc.wait(timeout=60) == (0 if removed else 1)
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "to stop tracking (2):" in shown and "football_perm\tpartition key" in shown
    assert ("stopped tracking 1 group(s)" in rest) is removed
    assert partitions(env) == ([] if removed else [str(gid), "football_perm"])
