"""Database blips: backends terminated under a crawl, twice, the second time while the step waits
to retry. The pool checks connections on checkout, every step of the crawl job has a retry
policy, and the data equals VK's afterwards."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import dagster as dg
import psycopg
from dagster._core.definitions.dependency import NodeHandle

from vk_pipeline.assets import vk_assets
from vk_pipeline.assets.analysis import analysis_assets
from vk_pipeline.assets.checks import vk_checks
from vk_pipeline.emulator import DEMO_TOKEN, World, WorldSpec
from vk_pipeline.jobs import crawl_job
from vk_pipeline.resources import build_resources
from vk_pipeline.storage import PostgresResource, close_pools
from vk_pipeline.testing import crawl
from vk_pipeline_tests.assets.conftest import assert_database_equals_truth, make_pipeline

APP = "vk_pipeline"


def terminate(url: str, *, active_only: bool = False) -> int:
    """pg_terminate_backend for the pipeline's connections to `url`'s database; how many."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
            "current_database() AND application_name = %s AND pid <> pg_backend_pid()"
            + (" AND state <> 'idle'" if active_only else ""),
            (APP,),
        ).fetchall()
    return len(rows)


def wait_for(what: str, probe: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_idle_pooled_connections_killed_twice_are_replaced_on_checkout(database_url: str):
    postgres = PostgresResource(database_url=database_url, pool_size=3)
    try:
        for _ in range(2):
            # Fill the pool with idle connections, then kill them all behind its back.
            with postgres.connection(), postgres.connection(), postgres.connection():
                pass
            assert terminate(database_url) >= 2
            assert postgres.execute("SELECT 41 + 1") == [(42,)]
    finally:
        close_pools(database_url)


def test_every_step_of_the_crawl_job_retries(database_url: str):
    defs = dg.Definitions(
        assets=[*vk_assets, *analysis_assets],
        asset_checks=vk_checks,
        jobs=[crawl_job],
        resources=build_resources(
            database_url=database_url, tokens=DEMO_TOKEN, vk_api_base_url="http://127.0.0.1:9"
        ),
    )
    job = defs.resolve_job_def(crawl_job.name)
    names = set()
    for node in job.graph.node_dict.values():
        policy = job.get_retry_policy_for_handle(NodeHandle(node.name, None))
        assert policy is not None and policy.max_retries >= 2, node.name
        names.add(node.name)
    assert {"posts_checks", "comments_checks", "groups", "posts", "comments"} <= names


def test_two_kills_the_second_during_the_retry_wait_then_data_equals_vk(
    emulator_factory, database_url: str
):
    world = World(WorldSpec(seed=19, groups=3, posts=30, comments=300, special_groups=False))
    server = emulator_factory(world=world)
    with dg.instance_for_test() as instance:
        p = make_pipeline(world, server, database_url, instance)
        keys = p.keys
        crawl.register(instance, keys)
        defs = dg.Definitions(
            assets=[*vk_assets, *analysis_assets],
            asset_checks=vk_checks,
            jobs=[crawl_job],
            resources=p.resources,
        )
        job = defs.resolve_job_def(crawl_job.name)
        kills: list[tuple[str, int]] = []
        failures: list[BaseException] = []

        def saboteur() -> None:
            try:
                with psycopg.connect(database_url, autocommit=True) as lock:
                    wait_for(
                        "the comments table",
                        lambda: bool(
                            lock.execute("SELECT to_regclass('vk.comments')").fetchone()[0]
                        ),
                    )
                    # Kill 1: the comments step holds its connection, waiting on a lock.
                    with lock.transaction():
                        lock.execute("LOCK TABLE vk.comments IN EXCLUSIVE MODE")
                        wait_for("the crawl to wait on vk.comments", lambda: waiting(lock))
                        kills.append(("in the step", terminate(database_url, active_only=True)))
                # Kill 2: the step is up for retry; its pool's idle connections die now.
                wait_for("the retry", lambda: up_for_retry(instance))
                kills.append(("in the retry wait", terminate(database_url)))
            except BaseException as exc:  # reported by the test thread
                failures.append(exc)

        thread = threading.Thread(target=saboteur, daemon=True)
        thread.start()
        result = job.execute_in_process(
            instance=instance,
            tags=crawl.range_tags(keys),
            run_config=crawl.crawl_run_config({"as_of": p.as_of}),
            raise_on_error=False,
        )
        thread.join(timeout=60)
        assert not failures, failures
        assert [where for where, _ in kills] == ["in the step", "in the retry wait"]
        assert all(n >= 1 for _, n in kills), kills
        assert result.success
        retried = [
            e.step_key
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
        ]
        assert retried, "the first kill should have failed a step once"
        close_pools(database_url)
        assert_database_equals_truth(p)


def waiting(conn: psycopg.Connection) -> bool:
    [(n,)] = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE relation = 'vk.comments'::regclass AND NOT granted"
    ).fetchall()
    return n > 0


def up_for_retry(instance: dg.DagsterInstance) -> bool:
    records = instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.STEP_UP_FOR_RETRY), limit=1
    )
    return bool(records)
