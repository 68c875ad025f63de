"""Durable crawls: a killed or stopped run keeps what it finished and its rerun resumes; faults of
every kind leave the database equal to VK; silent changes arrive within verify_days; texts are
stored exactly as VK served them."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from vk_pipeline.emulator import DEMO_TOKEN, World, WorldSpec
from vk_pipeline.emulator.texts import HOSTILE
from vk_pipeline.emulator.truth import PACK, comment_pages, wall_pages
from vk_pipeline.testing.faults import SOAK
from vk_pipeline_tests.assets.conftest import (
    Pipeline,
    assert_database_equals_truth,
    make_pipeline,
    materialization,
)

ROOT = Path(__file__).resolve().parents[2]


def new_pipeline(emulator_factory, database_url, world: World, instance, **server) -> Pipeline:
    emulator = emulator_factory(world=world, **server)
    return make_pipeline(world, emulator, database_url, instance, requests_per_second=emulator.rate)


def synced_posts(p: Pipeline) -> set[tuple[int, int]]:
    return {
        (-owner, pid)
        for owner, pid in p.query(
            "SELECT owner_id, id FROM vk.posts WHERE comments_synced_at IS NOT NULL"
        )
    }


def wait_for(what: str, probe: Callable[[], bool], timeout: float = 180) -> None:
    """Poll until `probe` holds; the timeout only guards a hang."""
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def waiting_on(conn: psycopg.Connection, table: str) -> bool:
    """Whether another session of this database waits for a lock on `table`."""
    [(waiting,)] = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (table,),
    ).fetchall()
    return waiting > 0


def remaining_lower_bound(p: Pipeline, synced: set[tuple[int, int]]) -> int:
    """Requests any client needs for what is not stored yet: groups, walls, unsynced comments."""
    walls = sum(wall_pages(p.world, g) for g in p.world.group_ids())
    pages = sum(
        comment_pages(p.world.comments(g, post["id"]))
        for g in p.world.group_ids()
        for post in p.world.posts(g)
        if (g, post["id"]) not in synced
    )
    return 1 + math.ceil(walls / PACK) + math.ceil(pages / PACK)


def quota_limited(
    emulator_factory, database_url, world: World, instance, method: str, calls: int
) -> Pipeline:
    """A pipeline whose token may call `method` only `calls` times today."""
    quotas = {DEMO_TOKEN: {method: calls}}
    return new_pipeline(emulator_factory, database_url, world, instance, token_quotas=quotas)


def stopped_by_quota(result: dg.ExecuteInProcessResult, step: str, method: str) -> None:
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == step
    message = failure.step_failure_data.error.message
    assert method in message and "daily quota" in message
    assert "next run continues" in message


def next_day(p: Pipeline, method: str) -> None:
    """VK resets the quota, and so does the shared budget's record of it."""
    p.server.set_token_quota(DEMO_TOKEN, method, None)
    p.query("DELETE FROM vk.token_quotas RETURNING 1")
    p.server.reset_stats()


def test_kill_9_mid_comments_then_a_rerun_resumes(emulator_factory, database_url):
    world = World(WorldSpec(seed=31, groups=1, posts=400, comments=60_000, special_groups=False))
    with dg.instance_for_test() as instance:
        p = new_pipeline(emulator_factory, database_url, world, instance, rate=3)
        truth_posts = {(g, post["id"]) for g in world.group_ids() for post in world.posts(g)}

        # The crawls run in processes of their own, as in production: the emulator's clock is
        # then not held up by the crawl's own work in this process.
        def crawl_process() -> subprocess.Popen:
            return subprocess.Popen(
                [
                    *(sys.executable, "-m", "vk_pipeline.testing.crawl_child"),
                    *(database_url, p.server.base_url, p.as_of, *p.keys, "--margin", "0.25"),
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        def synced_enough() -> bool:
            try:
                return len(synced_posts(p) & truth_posts) >= len(truth_posts) * 0.4
            except psycopg.errors.UndefinedTable:
                return False

        child = crawl_process()
        ended = child.poll
        try:
            wait_for("40 % of the posts synced", lambda: synced_enough() or ended() is not None)
            # Hold the crawl where it marks posts synced: with writes to vk.posts locked out,
            # its next unit waits with its comments written and uncommitted, and the kill lands
            # there. Nothing can commit from then on, so the stored state is what the kill left.
            with psycopg.connect(database_url) as lock, lock.transaction():
                lock.execute("LOCK TABLE vk.posts IN EXCLUSIVE MODE")
                wait_for(
                    "the crawl to wait for vk.posts",
                    lambda: waiting_on(lock, "vk.posts") or ended() is not None,
                )
                os.kill(child.pid, signal.SIGKILL)
                code = child.wait(timeout=30)
                assert code == -signal.SIGKILL, f"the crawl ended by itself (exit {code})"
        finally:
            if child.poll() is None:
                child.kill()
        synced = synced_posts(p)
        assert 0 < len(synced & truth_posts) < len(truth_posts)
        # Every post marked synced has exactly its comments: units are atomic.
        for g, pid in synced & truth_posts:
            live = {c["id"] for c in world.comments(g, pid) if not c.get("deleted")}
            stored = {
                cid
                for (cid,) in p.query(
                    "SELECT id FROM vk.comments WHERE owner_id = %s AND post_id = %s "
                    "AND NOT is_deleted",
                    -g,
                    pid,
                )
            }
            assert stored == live, (g, pid)
        bound = remaining_lower_bound(p, synced)
        p.server.reset_stats()
        assert crawl_process().wait(timeout=300) == 0
        assert_database_equals_truth(p)
        requests = p.server.stats()["http_requests"]
        print(f"\nrerun after kill -9: {requests} requests, remaining lower bound {bound}")
        assert p.server.stats()["errors"].get("6", 0) == 0
        assert requests <= math.ceil(bound * 1.2)
        [(dupes,)] = p.query("SELECT count(*) - count(DISTINCT (owner_id, id)) FROM vk.comments")
        assert dupes == 0


def test_a_quota_stop_keeps_what_was_read_and_the_next_run_continues(
    emulator_factory, database_url
):
    world = World(WorldSpec(seed=32, groups=2, posts=300, comments=8_000, special_groups=False))
    with dg.instance_for_test() as instance:
        p = quota_limited(emulator_factory, database_url, world, instance, "wall.getComments", 60)
        stopped_by_quota(p.crawl(raise_on_error=False), "comments", "wall.getComments")
        stopped_at = synced_posts(p)
        assert stopped_at, "posts read before the stop are stored"
        next_day(p, "wall.getComments")
        assert p.crawl().success
        assert_database_equals_truth(p)
        calls = p.server.stats()["by_method"]["wall.getComments"]["api_calls"]
        left = sum(
            comment_pages(world.comments(g, post["id"]))
            for g in world.group_ids()
            for post in world.posts(g)
            if (g, post["id"]) not in stopped_at
        )
        assert calls <= left * 1.2


def test_a_wall_cut_off_mid_listing_is_listed_to_its_end_by_the_next_run(
    emulator_factory, database_url
):
    # Walls are committed 2,000 posts at a time, newest first: after a stop the newest posts are
    # stored and the oldest are not, so a windowed refresh (full_listing off) must not take the
    # newest stored post as the point it may stop listing at.
    world = World(WorldSpec(seed=33, groups=1, posts=6_000, comments=3_000, special_groups=False))
    with dg.instance_for_test() as instance:
        p = quota_limited(emulator_factory, database_url, world, instance, "wall.get", 40)
        stopped_by_quota(p.crawl(raise_on_error=False, full_listing=False), "posts", "wall.get")
        [(stored,)] = p.query("SELECT count(*) FROM vk.posts")
        assert 0 < stored < len(world.posts(world.group_ids()[0]))
        assert p.query("SELECT * FROM vk.wall_listings") == []
        next_day(p, "wall.get")
        assert p.crawl(full_listing=False).success
        assert_database_equals_truth(p)
        [(through,)] = p.query("SELECT listed_through FROM vk.wall_listings")
        [(newest,)] = p.query(
            "SELECT max(date) FROM vk.posts WHERE NOT is_pinned AND NOT is_deleted"
        )
        assert through == newest


def test_faults_of_every_kind_leave_the_database_equal_to_vk(emulator_factory, database_url):
    world = World(WorldSpec(seed=33, groups=3, posts=300, comments=6_000, special_groups=True))
    server = emulator_factory(world=world)
    server.set_faults("*", SOAK)
    with dg.instance_for_test() as instance:
        p = make_pipeline(world, server, database_url, instance, timeout_seconds=1.0)
        for day in range(4):
            if day:
                world.advance(days=1, new_posts=0.03, commented_posts=0.05, edits=0.02)
            result = p.crawl(lookback_days=100_000)
            assert result.success, f"day {day}"
            assert_database_equals_truth(p)
        faults = server.stats()["faults"]
        assert {"http_5xx", "slow", "drop", "non_json", "truncated"} <= set(faults), faults
        assert {"error_1", "error_6", "error_9", "error_10"} <= set(faults), faults
        assert materialization(result, "comments")["vk_retries"] > 0


def test_texts_are_stored_exactly_as_vk_served_them(emulator_factory, database_url):
    world = World(WorldSpec(seed=34, groups=2, posts=200, comments=3_000, hostile_texts=True))
    with dg.instance_for_test() as instance:
        p = new_pipeline(emulator_factory, database_url, world, instance)
        assert p.crawl().success
        assert_database_equals_truth(p)  # exact texts, NUL the one documented exception
        stored = {
            t for (t,) in p.query("SELECT text FROM vk.comments UNION SELECT text FROM vk.posts")
        }
        planted = {h.replace("\x00", "") for h in HOSTILE}
        assert len(planted & stored) >= len(HOSTILE) - 2
        assert max(len(t or "") for t in stored) >= 40_000


def test_silent_changes_arrive_within_verify_days(emulator_factory, database_url):
    world = World(WorldSpec(seed=35, groups=2, posts=400, comments=8_000, special_groups=False))
    with dg.instance_for_test() as instance:
        p = new_pipeline(emulator_factory, database_url, world, instance)
        assert p.crawl().success
        # Edits and deletions of comments with replies: VK's comments.count does not move.
        world.advance(
            days=1, new_posts=0, commented_posts=0, edits=0.03, deletions=0.03, silent=True
        )
        stored_counts = dict(
            ((g, pid), n)
            for g, pid, n in p.query("SELECT group_id, id, comments_count FROM vk.posts")
        )
        assert stored_counts == {
            (g, post["id"]): post["comments"]["count"]
            for g in world.group_ids()
            for post in world.posts(g)
        }
        with pytest.raises(AssertionError):
            assert_database_equals_truth(p)  # the changes are there, unseen so far
        days = None
        for day in range(1, 9):
            if day > 1:
                world.advance(days=1, new_posts=0, commented_posts=0, edits=0, deletions=0)
            assert p.crawl(lookback_days=0, verify_days=7).success
            try:
                assert_database_equals_truth(p)
            except AssertionError:
                continue
            days = day
            break
        assert days is not None and days <= 7, days
