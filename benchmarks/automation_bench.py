"""Automation figures: one drop-folder sensor tick over 10 files (time, VK requests, runs), the
ticks after it launching nothing; the daily refresh for 1,000 registered groups (run requests,
goal <= 20) and the same tick evaluated again by the scheduler launching 0.

The sensor runs on a built context against the emulator (3 requests/s), Postgres (embedded, or
`--database-url`) and a real instance; the schedule runs through the scheduler daemon's own tick
code against the real code location (`vk_pipeline/definitions.py`), runs queued, not executed.

    .venv/bin/python benchmarks/automation_bench.py [--database-url URL] [--groups 1000]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import tempfile
import time
import warnings
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from vk_pipeline.assets import vk_assets
from vk_pipeline.assets.analysis import analysis_assets
from vk_pipeline.automation import build_group_file_sensor, daily_refresh, group_lists
from vk_pipeline.automation.chunks import RANGE_END_TAG, RANGE_START_TAG
from vk_pipeline.emulator import DEMO_TOKEN, EmulatorServer, World, WorldSpec
from vk_pipeline.jobs import crawl_job
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.resources import build_resources
from vk_pipeline.storage import close_pools, resolve_database_url
from vk_pipeline.testing.databases import scratch_database

MOSCOW = ZoneInfo("Europe/Moscow")
FILES = 10
PER_FILE = 200
OVERLAP = 20  # groups each file shares with the next one


def write_files(world: World, folder: Path) -> tuple[int, int]:
    """Ten files of different shapes; returns (distinct groups, rejected lines)."""
    import openpyxl

    gids = world.group_ids()
    distinct: set[int] = set()
    rejected = 0
    for n in range(FILES):
        chunk = gids[n * (PER_FILE - OVERLAP) : n * (PER_FILE - OVERLAP) + PER_FILE]
        distinct.update(chunk)
        spelled = []
        for i, g in enumerate(chunk):
            name = world.group(g)["screen_name"]
            spelled.append(
                [f"club{g}", f"https://vk.com/{name}", f"-{g}", f"@{name}", f"vk.ru/public{g}/"][
                    i % 5
                ]
            )
        junk = [f"vk.com/id{n + 1}", "https://t.me/coffee", "Кофейня у дома"]
        rejected += len(junk)
        kind = n % 5
        if kind == 0:
            (folder / f"list{n}.txt").write_text("\n".join(["# coffee", *spelled, *junk]) + "\n")
        elif kind == 1:
            rows = ["Название;Ссылка;Подписчики"] + [
                f"Сообщество {i};{s};{i}" for i, s in enumerate(spelled + junk)
            ]
            (folder / f"list{n}.csv").write_bytes(("\r\n".join(rows) + "\r\n").encode("cp1251"))
        elif kind == 2:
            rows = ["name\tmembers\tvk"] + [f"g{i}\t{i}\t{s}" for i, s in enumerate(spelled + junk)]
            (folder / f"list{n}.tsv").write_text("\n".join(rows) + "\n")
        elif kind == 3:
            (folder / f"list{n}.txt").write_bytes(
                ("\r\n".join(spelled + junk) + "\r\n").encode("utf-16")
            )
        else:
            wb = openpyxl.Workbook()
            wb.active.append(["Название", "Ссылка"])
            for i, s in enumerate(spelled + junk):
                wb.active.append([f"Сообщество {i}", s])
            buf = io.BytesIO()
            wb.save(buf)
            (folder / f"list{n}.xlsx").write_bytes(buf.getvalue())
    then = time.time() - 60
    for path in folder.iterdir():
        os.utime(path, (then, then))
    return len(distinct), rejected


def sensor_figures(url: str, rate: float, seed: int) -> list[tuple[str, str, str]]:
    world = World(WorldSpec(seed=seed, groups=FILES * PER_FILE, posts=FILES * PER_FILE, comments=0))
    rows: list[tuple[str, str, str]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmulatorServer(world, rate=rate, tokens=[DEMO_TOKEN]) as server,
        dg.instance_for_test() as instance,
    ):
        folder = Path(tmp)
        distinct, rejected = write_files(world, folder)
        resources = build_resources(
            database_url=url,
            tokens=DEMO_TOKEN,
            vk_api_base_url=server.base_url,
            requests_per_second=rate,
        )
        resources["postgres"].ensure_schema()
        sensor = build_group_file_sensor(folder=folder, settle=0)
        defs = dg.Definitions(
            assets=[*vk_assets, group_lists, *analysis_assets],
            jobs=[crawl_job],
            sensors=[sensor],
            resources=resources,
        )
        launched: set[str] = set()
        cursor = None

        def tick() -> tuple[dg.SensorResult, list[dg.RunRequest], float]:
            nonlocal cursor
            started = time.perf_counter()
            with dg.build_sensor_context(
                instance=instance, definitions=defs, resources=resources, cursor=cursor
            ) as ctx:
                result = sensor(ctx)
            seconds = time.perf_counter() - started
            # What the daemon does with the result: partitions, each run key once, the cursor.
            for request in result.dynamic_partitions_requests or []:
                keys = [
                    k
                    for k in request.partition_keys
                    if not instance.has_dynamic_partition(GROUP_PARTITIONS_NAME, k)
                ]
                instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, keys)
            new = [r for r in result.run_requests or [] if r.run_key not in launched]
            launched.update(r.run_key for r in new if r.run_key)
            cursor = result.cursor
            return result, new, seconds

        server.reset_stats()
        result, runs, seconds = tick()
        stats = server.stats()
        order = list(instance.get_dynamic_partitions(GROUP_PARTITIONS_NAME))
        sizes = [
            order.index(r.tags[RANGE_END_TAG]) - order.index(r.tags[RANGE_START_TAG]) + 1
            for r in runs
        ]
        events = result.asset_events
        found_rejected = sum(e.metadata["rejected_lines"].value for e in events)
        rows.append(
            (
                f"sensor: one tick over {FILES} files ({FILES * PER_FILE:,} references, 5 formats)",
                f"{seconds:.1f} s; {stats['http_requests']} VK HTTP request(s); {len(order):,} partitions "
                f"(distinct groups {distinct:,}); {len(runs)} runs of <= {max(sizes)} groups; "
                f"{found_rejected} rejected lines (expected {rejected}) in {len(events)} asset events",
                "runs <= 50 groups",
            )
        )
        _, again, _ = tick()
        for path in list(folder.iterdir()):  # the same contents again, renamed
            path.rename(path.with_name("copy of " + path.name))
        _, renamed, _ = tick()
        rows.append(
            (
                "sensor: next tick, then all files renamed: runs launched",
                f"{len(again)}, {len(renamed)}",
                "0, 0",
            )
        )
    close_pools(url)
    return rows


def schedule_figures(groups: int, instance_url: str | None) -> list[tuple[str, str, str]]:
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.scheduler.instigation import TickStatus
    from dagster._core.test_utils import (
        InProcessTestWorkspaceLoadTarget,
        create_test_daemon_workspace_context,
        freeze_time,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._scheduler.scheduler import launch_scheduled_runs

    import vk_pipeline.definitions as project

    rows: list[tuple[str, str, str]] = []
    keys = [str(100_000 + i) for i in range(groups)]
    overrides: dict[str, object] = {
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
        }
    }
    if instance_url:
        # As deployed: run and event storage in Postgres. SQLite stores the "planned" events a
        # submitted run writes (one per group and asset) at a few dozen a second here.
        overrides["storage"] = {
            "postgres": {"postgres_url": "postgresql+psycopg2://" + instance_url.split("://", 1)[1]}
        }
    storage = "Postgres instance" if instance_url else "SQLite instance"
    with dg.instance_for_test(overrides=overrides) as instance:
        instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, keys)
        tick_time = datetime(2026, 3, 2, 3, 0, tzinfo=MOSCOW)
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick_time)
        started = time.perf_counter()
        requests = daily_refresh.evaluate_tick(context).run_requests or []
        seconds = time.perf_counter() - started
        rows.append(
            (
                f"schedule: run requests for {groups:,} registered groups",
                f"{len(requests)} (largest {max(int(r.tags['vk_pipeline/groups']) for r in requests)} groups), evaluated in {seconds:.2f} s",
                "<= 20" if groups == 1000 else f"<= {-(-groups // 50)}",
            )
        )

        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(
                executable_path=sys.executable,
                python_file=project.__file__,
                attribute="defs",
                working_directory=str(Path(project.__file__).parents[1]),
            ),
            location_name="vk_pipeline",
        )
        log = logging.getLogger("automation_bench")
        with create_test_daemon_workspace_context(
            InProcessTestWorkspaceLoadTarget(origin), instance
        ) as ws:
            entry = next(iter(ws.create_request_context().get_code_location_entries().values()))
            repo = next(iter(entry.code_location.get_repositories().values()))
            schedule = repo.get_schedule("daily_refresh")
            night = tick_time - timedelta(hours=1)
            with freeze_time(night):
                list(launch_scheduled_runs(ws, log, night.astimezone(ZoneInfo("UTC")), {}))
            before = instance.get_instigator_state(
                schedule.get_remote_origin_id(), schedule.selector_id
            )
            at = tick_time + timedelta(seconds=30)
            started = time.perf_counter()
            with freeze_time(at):
                list(launch_scheduled_runs(ws, log, at.astimezone(ZoneInfo("UTC")), {}))
            submit_seconds = time.perf_counter() - started
            first = len(instance.get_runs())
            # The daemon dies mid-tick: tick left STARTED, schedule state as before; evaluate again.
            [tick] = instance.get_ticks(
                schedule.get_remote_origin_id(), schedule.selector_id, limit=1
            )
            instance.update_tick(tick.with_status(TickStatus.STARTED))
            instance.update_instigator_state(before)
            later = at + timedelta(minutes=1)
            with freeze_time(later):
                list(launch_scheduled_runs(ws, log, later.astimezone(ZoneInfo("UTC")), {}))
            [again] = instance.get_ticks(
                schedule.get_remote_origin_id(), schedule.selector_id, limit=1
            )
            second = len(instance.get_runs()) - first
        rows.append(
            (
                "schedule through the scheduler daemon: runs launched by the tick; by the same tick evaluated again",
                f"{first} ({submit_seconds:.0f} s to submit, {storage}); {second} (tick {again.tick_id} = {tick.tick_id}, {again.status.value})",
                "<= 20; 0" if groups == 1000 else "; 0",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", help="admin URL of a server (default: embedded)")
    parser.add_argument(
        "--groups", type=int, default=1000, help="registered groups for the schedule"
    )
    parser.add_argument("--rate", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("dagster").setLevel(logging.WARNING)
    # The real code location reads these when the scheduler loads it; the schedule needs neither.
    os.environ.setdefault("VK_ACCESS_TOKEN", DEMO_TOKEN)
    admin = resolve_database_url(args.database_url)
    with ExitStack() as stack:
        url = stack.enter_context(scratch_database(admin))
        os.environ.setdefault("DATABASE_URL", url)
        # A URL-form server gets a Postgres-backed Dagster instance too; the embedded one stays
        # SQLite.
        instance_url = (
            stack.enter_context(scratch_database(admin, "vk_bench_dagster"))
            if args.database_url
            else None
        )
        rows = sensor_figures(url, args.rate, args.seed)
        rows += schedule_figures(args.groups, instance_url)
    print(
        f"emulator at {args.rate:g} requests/s, Postgres {'server' if args.database_url else 'embedded'}"
    )
    print("| figure | value | goal |")
    print("|---|---|---|")
    for figure, value, goal in rows:
        print(f"| {figure} | {value} | {goal} |")


if __name__ == "__main__":
    main()
