"""Where one refresh run's time goes: a ranged `crawl_groups` run over N groups, profiled.

The daily refresh's figures (`refresh_scale.py`) say how long a refresh takes; this says why. It
loads an emulator world of `--groups` communities (the long-tailed shape `refresh_scale.py` uses,
scaled to the same posts and comments per group) into Postgres in one run, advances the world a
day, and runs the refresh of all of them as one run of the code location's own `crawl_groups` job,
in this process, on the Postgres instance storage `dagster.yaml` configures. Printed: the run's
phases (from its event log), its events by type, and the profile: time by package, and the
functions of our own code and of Dagster's event writing that took longest.

    .venv/bin/python benchmarks/refresh_profile.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python benchmarks/refresh_profile.py --groups 200 --profile /tmp/refresh.prof ...
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as db
from dagster_shared.serdes import serialize_value

sys.path.insert(0, str(Path(__file__).resolve().parent))
from refresh_scale import run_phases, world_spec

from vk_pipeline.automation.chunks import RANGE_END_TAG, RANGE_START_TAG
from vk_pipeline.emulator import DEMO_TOKEN, World
from vk_pipeline.local import PROJECT_ROOT, sqlalchemy_postgres_url
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.storage import PostgresResource, resolve_database_url
from vk_pipeline.testing.databases import scratch_database
from vk_pipeline.testing.processes import EmulatorProcess

PACKAGES = ("vk_pipeline", "dagster", "dagster_postgres", "sqlalchemy", "psycopg", "psycopg2",
            "pandas", "pydantic", "httpx", "logging", "json")  # fmt: skip


def package_of(filename: str) -> str:
    parts = Path(filename).parts
    for name in PACKAGES:
        if name in parts:
            return name
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C calls)"
    return "other"


def run_once(instance: dg.DagsterInstance, keys: list[str]) -> tuple[str, float]:
    from vk_pipeline.definitions import defs

    job = defs.resolve_job_def("crawl_groups")
    started = time.monotonic()
    result = job.execute_in_process(
        instance=instance,
        tags={RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]},
        raise_on_error=True,
    )
    return result.run_id, time.monotonic() - started


def event_bytes(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str, int, int]]:
    """The run's event log rows and their serialized size, by event type and asset, largest first
    (what every event costs to serialize, send and store)."""
    query = db.text(
        "SELECT dagster_event_type, asset_key, count(*), coalesce(sum(length(event)), 0)"
        " FROM event_logs"
        " WHERE run_id = :run_id GROUP BY 1, 2 ORDER BY 4 DESC"
    )
    with instance.event_log_storage.index_connection() as conn:  # type: ignore[attr-defined]
        return [tuple(row) for row in conn.execute(query, {"run_id": run_id})]  # type: ignore[misc]


def metadata_sizes(logs: list[dg.EventLogEntry]) -> dict[str, list[tuple[str, int]]]:
    """Per asset, the metadata of the run's middle materialization, largest entry first."""
    found: dict[str, list[Any]] = {}
    for entry in logs:
        mat = entry.asset_materialization
        if mat is not None:
            found.setdefault(mat.asset_key.to_user_string(), []).append(mat)
    shown = {}
    for asset, mats in found.items():
        meta = mats[len(mats) // 2].metadata
        sizes = [(k, len(serialize_value(v))) for k, v in meta.items()]
        shown[asset] = sorted(sizes, key=lambda kv: -kv[1])
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="admin URL of a server (default: embedded)")
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--profile", help="also write the raw profile here (pstats)")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    # 2,000 groups hold 60,000 posts and 300,000 comments in refresh_scale.py.
    spec = world_spec(args.groups, 30 * args.groups, 150 * args.groups, args.seed)
    admin = resolve_database_url(args.database_url)
    with ExitStack() as stack:
        world = World(spec)
        server = stack.enter_context(EmulatorProcess(spec, rate=3.0, tokens=[DEMO_TOKEN]))
        data_url = stack.enter_context(scratch_database(admin, "vk_prof"))
        dagster_url = sqlalchemy_postgres_url(
            stack.enter_context(scratch_database(admin, "vk_prof_dagster"))
        )
        PostgresResource(database_url=data_url).ensure_schema()
        home = Path(tempfile.mkdtemp(prefix="vk_prof_home_"))
        stack.callback(lambda: shutil.rmtree(home, ignore_errors=True))
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
        os.environ.update(
            {
                "DAGSTER_HOME": str(home),
                "DAGSTER_POSTGRES_URL": dagster_url,
                "DATABASE_URL": data_url,
                "VK_API_BASE_URL": server.base_url,
                "VK_ACCESS_TOKENS": DEMO_TOKEN,
            }
        )
        os.environ.pop("VK_ACCESS_TOKEN", None)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            keys = [str(g) for g in world.group_ids()]
            instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, keys)
            _, seconds = run_once(instance, keys)
            print(f"first load of {len(keys)} groups: {seconds:.1f} s", flush=True)
            server.advance(world, days=1)
            server.reset_stats()
            profiler = cProfile.Profile()
            profiler.enable()
            run_id, seconds = run_once(instance, keys)
            profiler.disable()
            requests = int(server.stats()["http_requests"])
            print(f"refresh of {len(keys)} groups: {seconds:.1f} s, {requests} VK requests")
            print(f"phases: {run_phases(instance, run_id)}")
            logs = instance.all_logs(run_id)
            kinds = Counter(
                e.dagster_event.event_type_value for e in logs if e.dagster_event is not None
            )
            print(f"events: {sum(kinds.values())} {dict(kinds.most_common())}")
            print("event log bytes (KB) by type and asset:")
            for kind, asset, n, size in event_bytes(instance, run_id):
                print(
                    f"  {kind or '(log message)':32} {asset or '':28} {n:6} rows {size / 1024:9.1f} KB"
                )
            print("a materialization's metadata, by entry (serialized bytes):")
            for asset, sizes in metadata_sizes(logs).items():
                print(f"  {asset}: " + ", ".join(f"{k} {v}" for k, v in sizes))
    stats = pstats.Stats(profiler)
    if args.profile:
        stats.dump_stats(args.profile)
    by_package: Counter[str] = Counter()
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        by_package[package_of(filename)] += tottime
    print(
        "\nown time by package (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in by_package.most_common())
    )
    stats.sort_stats("cumulative")
    print("\nour code, by cumulative time:")
    stats.print_stats(r"vk_pipeline", args.top)
    print("\nDagster's event writing and logging, by cumulative time:")
    stats.print_stats(
        r"handle_new_event|store_event|log_dagster_event|from_step|serialize_value|_event_to_row",
        args.top,
    )


if __name__ == "__main__":
    main()
