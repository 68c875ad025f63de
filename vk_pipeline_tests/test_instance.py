"""The instance's production conventions (dagster.yaml) at work on a real Postgres: freshness
policies evaluated, a run past its `dagster/max_runtime` failed by run monitoring (and so retried),
and the pool slots of a run that ended abnormally freed. Dagster's own daemon iterations run
against the instance, with the clock moved forward rather than waited for."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent
from dagster._core.test_utils import create_run_for_test, freeze_time
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.monitoring.concurrency import execute_concurrency_slots_iteration
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration

from vk_pipeline import local
from vk_pipeline_tests.fixtures.postgres import create_database, drop_database

ROOT = Path(__file__).resolve().parent.parent
LOG = logging.getLogger(__name__)
POOL = "vk_api"


@pytest.fixture(scope="module")
def instance(
    tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str
) -> Iterator[dg.DagsterInstance]:
    """The project's dagster.yaml, as `make dev` and the image use it, on a scratch database (one
    for the module: each test makes runs of its own)."""
    home = tmp_path_factory.mktemp("instance")
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    url = create_database(pg_admin_url, "vkinst")
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DAGSTER_POSTGRES_URL", local.sqlalchemy_postgres_url(url))
            with dg.DagsterInstance.from_config(str(home)) as inst:
                yield inst
    finally:
        drop_database(pg_admin_url, url)


def started_run(instance: dg.DagsterInstance, tags: dict[str, str]) -> tuple[str, float]:
    """A crawl run the way a run worker starts one: created, then its RUN_START event."""
    run = create_run_for_test(instance, job_name="crawl_groups", tags=tags)
    instance.handle_new_event(
        dg.EventLogEntry(
            error_info=None,
            level=logging.DEBUG,
            user_message="",
            run_id=run.run_id,
            timestamp=time.time(),
            dagster_event=DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=run.job_name),
        )
    )
    record = instance.get_run_record_by_id(run.run_id)
    assert record is not None and record.start_time is not None
    return run.run_id, record.start_time


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status


def test_freshness_policies_are_evaluated_by_the_daemon(instance: dg.DagsterInstance):
    assert instance.freshness_enabled
    assert "FRESHNESS_DAEMON" in instance.get_required_daemon_types()


def test_a_run_past_its_max_runtime_is_failed_and_retried(instance: dg.DagsterInstance):
    # The daemon runs the monitoring (below, its iteration is called directly).
    assert instance.run_monitoring_enabled
    assert "MONITORING" in instance.get_required_daemon_types()
    run_id, started = started_run(instance, {"dagster/max_runtime": "600"})
    settings = instance.run_monitoring_settings
    with WorkspaceProcessContext(instance, EmptyWorkspaceTarget()) as context:

        def monitor_at(t: float) -> None:
            with freeze_time(t):
                list(execute_run_monitoring_iteration(context, LOG))

        monitor_at(started + 590)
        assert status(instance, run_id) == dg.DagsterRunStatus.STARTED
        # Past the limit: terminated. No worker answers here (as with a hung one), so the run
        # stays cancelling until the cancel timeout fails it.
        monitor_at(started + 610)
        assert status(instance, run_id) in (
            dg.DagsterRunStatus.CANCELING,
            dg.DagsterRunStatus.FAILURE,
        )
        monitor_at(started + 610 + settings["cancel_timeout_seconds"] + 10)
    assert status(instance, run_id) == dg.DagsterRunStatus.FAILURE
    # A failed run is what run retries relaunch (a cancelled one would not be).
    assert instance.run_retries_enabled and instance.run_retries_max_retries >= 1


def test_a_run_without_the_tag_is_held_to_the_instance_backstop(instance: dg.DagsterInstance):
    assert 3600 <= instance.run_monitoring_max_runtime_seconds <= 24 * 3600


def test_a_failed_runs_pool_slots_are_freed(instance: dg.DagsterInstance):
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(POOL)
    run_id, _ = started_run(instance, {})
    assert storage.claim_concurrency_slot(POOL, run_id, "posts").is_claimed
    # The worker dies mid-step: the run is failed (run monitoring), the step never frees its slot.
    run = instance.get_run_by_id(run_id)
    assert run is not None
    instance.report_run_failed(run, "run worker died")
    record = instance.get_run_record_by_id(run_id)
    assert record is not None and record.end_time is not None
    wait = instance.run_monitoring_settings["free_slots_after_run_end_seconds"]
    assert 0 < wait <= 300
    with WorkspaceProcessContext(instance, EmptyWorkspaceTarget()) as context:
        with freeze_time(record.end_time + wait / 2):
            list(execute_concurrency_slots_iteration(context, LOG))
        assert storage.get_concurrency_info(POOL).active_slot_count == 1
        with freeze_time(record.end_time + wait + 5):
            list(execute_concurrency_slots_iteration(context, LOG))
    info = storage.get_concurrency_info(POOL)
    assert info.active_slot_count == 0 and info.slot_count == 3
