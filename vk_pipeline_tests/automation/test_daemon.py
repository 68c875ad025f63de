"""The real code location (`vk_pipeline/definitions.py`) under the daemon's own tick code.

The sensor daemon's and the scheduler's iteration functions run against a real instance; the
code location is loaded in-process from the definitions file, configured only by environment
variables as a deployment would configure it. Runs are queued (no run worker is started): what
is checked is what the daemon decides to launch, and that it launches nothing twice.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import psycopg
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.storage.dagster_run import RunsFilter
from dagster._core.test_utils import (
    InProcessTestWorkspaceLoadTarget,
    create_test_daemon_workspace_context,
    freeze_time,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.sensor import execute_sensor_iteration
from dagster._scheduler.scheduler import launch_scheduled_runs

import vk_pipeline.definitions as project_definitions
from vk_pipeline.automation.chunks import RANGE_END_TAG, RANGE_START_TAG
from vk_pipeline.automation.events import GROUP_LISTS_KEY
from vk_pipeline.automation.sensors import FILE_TAG
from vk_pipeline.emulator import DEMO_TOKEN, World
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME

QUEUED = {
    "run_coordinator": {
        "module": "dagster._core.run_coordinator",
        "class": "QueuedRunCoordinator",
    }
}
LOG = logging.getLogger("vk_pipeline_tests.daemon")
MOSCOW = ZoneInfo("Europe/Moscow")


@contextmanager
def code_location(instance: dg.DagsterInstance) -> Iterator[object]:
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable,
            python_file=str(Path(project_definitions.__file__)),
            attribute="defs",
            working_directory=str(Path(project_definitions.__file__).parents[1]),
        ),
        location_name="vk_pipeline",
    )
    with create_test_daemon_workspace_context(
        InProcessTestWorkspaceLoadTarget(origin), instance
    ) as workspace:
        yield workspace


def remote(workspace, kind: str, name: str):
    entry = next(iter(workspace.create_request_context().get_code_location_entries().values()))
    assert entry.code_location, entry.load_error
    repo = next(iter(entry.code_location.get_repositories().values()))
    return repo.get_sensor(name) if kind == "sensor" else repo.get_schedule(name)


@pytest.fixture
def deployment(monkeypatch, tmp_path, emulator_factory, automation_world: World, registry_db):
    """The environment a deployment sets; returns the drop folder."""
    server = emulator_factory(world=automation_world)
    drops = tmp_path / "drops"
    monkeypatch.setenv("VK_API_BASE_URL", server.base_url)
    monkeypatch.setenv("VK_ACCESS_TOKEN", DEMO_TOKEN)
    monkeypatch.setenv("DATABASE_URL", registry_db)
    monkeypatch.setenv("VK_PIPELINE_DROP_DIR", str(drops))
    monkeypatch.setenv("VK_PIPELINE_DROP_SETTLE_SECONDS", "0")
    return drops


def sensor_tick(workspace) -> None:
    list(execute_sensor_iteration(workspace, LOG, None, None))


def test_a_dropped_file_through_the_sensor_daemon(deployment: Path, automation_world, registry_db):
    groups = automation_world.group_ids()[:60]
    with dg.instance_for_test(overrides=QUEUED) as instance, code_location(instance) as ws:
        start = datetime.now(MOSCOW)
        deployment.mkdir(parents=True, exist_ok=True)
        path = deployment / "cafes.txt"
        path.write_text("\n".join(f"club{g}" for g in groups) + "\nid5\nhttps://t.me/x\n")

        with freeze_time(start):
            sensor_tick(ws)
        runs = instance.get_runs()
        assert len(runs) == 2 and {r.tags[FILE_TAG] for r in runs} == {"cafes.txt"}
        order = list(instance.get_dynamic_partitions(GROUP_PARTITIONS_NAME))
        assert order == [str(g) for g in groups]
        covered = set()
        for run in runs:
            lo, hi = order.index(run.tags[RANGE_START_TAG]), order.index(run.tags[RANGE_END_TAG])
            covered.update(order[lo : hi + 1])
        assert covered == set(order)
        [event] = instance.fetch_materializations(GROUP_LISTS_KEY, limit=10).records
        metadata = event.asset_materialization.metadata
        assert metadata["rejected_lines"].value == 2
        assert "t.me" in metadata["rejections"].value

        sensor = remote(ws, "sensor", "group_file_sensor")
        [tick] = instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id, limit=1)
        assert tick.status == TickStatus.SUCCESS and len(tick.run_ids) == 2

        # The same content again, under another name, a minute later: nothing launched.
        (deployment / "cafes-copy.txt").write_bytes(path.read_bytes())
        with freeze_time(start + timedelta(seconds=61)):
            sensor_tick(ws)
        assert len(instance.get_runs()) == 2

        # A tick whose result was lost (the daemon died before keeping the cursor, and the file
        # never got confirmed): the file is reported again and the daemon drops its run keys.
        state = instance.get_instigator_state(sensor.get_remote_origin_id(), sensor.selector_id)
        instance.update_instigator_state(
            state.with_data(state.instigator_data._replace(cursor=None))
        )
        with psycopg.connect(registry_db) as conn:
            conn.execute("UPDATE vk.group_files SET reported_at = NULL")
        with freeze_time(start + timedelta(seconds=122)):
            sensor_tick(ws)
        ticks = instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id, limit=1)
        assert ticks[0].status == TickStatus.SKIPPED  # run requests made, none new
        assert len(instance.get_runs()) == 2


def test_daily_refresh_through_the_scheduler(deployment: Path):
    # 150 groups, 3 runs: the count for 1,000 groups is checked on the schedule itself
    # (test_schedules.py); submitting a run of 50 groups writes 150 "planned" events, which a
    # SQLite instance stores at about 30 a second on a busy machine.
    with dg.instance_for_test(overrides=QUEUED) as instance, code_location(instance) as ws:
        instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, [str(i) for i in range(1, 151)])
        schedule = remote(ws, "schedule", "daily_refresh")
        night = datetime(2026, 3, 2, 2, 0, tzinfo=MOSCOW)
        with freeze_time(night):  # the daemon's first look: it starts counting from now
            list(launch_scheduled_runs(ws, LOG, night.astimezone(ZoneInfo("UTC")), {}))
        before = instance.get_instigator_state(
            schedule.get_remote_origin_id(), schedule.selector_id
        )
        three = night + timedelta(hours=1, seconds=30)
        with freeze_time(three):
            list(launch_scheduled_runs(ws, LOG, three.astimezone(ZoneInfo("UTC")), {}))
        runs = instance.get_runs(RunsFilter(tags={"dagster/schedule_name": "daily_refresh"}))
        assert len(runs) == 3
        assert {r.tags["dagster/run_key"] for r in runs} == {
            f"refresh-2026-03-02-{n:03d}" for n in range(1, 4)
        }

        # The daemon died in the middle of that tick, after launching the runs: the tick is left
        # STARTED and the schedule's state is as before it. The next daemon evaluates the 03:00
        # tick again.
        [tick] = instance.get_ticks(schedule.get_remote_origin_id(), schedule.selector_id, limit=1)
        assert tick.status == TickStatus.SUCCESS
        instance.update_tick(tick.with_status(TickStatus.STARTED))
        instance.update_instigator_state(before)
        later = night + timedelta(hours=1, minutes=1)
        with freeze_time(later):
            list(launch_scheduled_runs(ws, LOG, later.astimezone(ZoneInfo("UTC")), {}))
        [again] = instance.get_ticks(schedule.get_remote_origin_id(), schedule.selector_id, limit=1)
        assert again.tick_id == tick.tick_id and again.status == TickStatus.SUCCESS
        assert len(instance.get_runs()) == 3
