"""Issue 19's "must show": hostile drops through a real code server and daemon, and a double
database kill under a crawl.

Part 1 (drops): a workbook bomb (~1.3 MB zipped, ~300 MB of sheet XML, 20 M cells), a 48 MB text
file of 4 M lines, a symbolic link to a secret file (a fake `VK_ACCESS_TOKEN=...` line) and a good
file of 20 groups are put into the drop folder together; then `dagster code-server start` and
`dagster-daemon run` (as `make dev` runs them, Postgres instance storage) run the sensor. Figures:
each tick's time, the code server's peak resident memory (VmHWM), groups registered, every
rejection and why, VK requests of the sensor's ticks, and a search for the secret in every table of
both databases and every file under DAGSTER_HOME (logs, compute logs) plus the processes' output.

Part 2 (double kill): one ranged run of crawl_groups (in this process) over a small world; its
comments step's connection is terminated while it writes (pg_terminate_backend), and every
pipeline connection again while the step waits to retry. Figures: attempts, outcome, data vs VK.

    .venv/bin/python benchmarks/hostile_drop_bench.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
import warnings
import zipfile
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import psycopg

from vk_pipeline.emulator import DEMO_TOKEN, World, WorldSpec
from vk_pipeline.local import PROJECT_ROOT, sqlalchemy_postgres_url
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.storage import PostgresResource, close_pools, resolve_database_url
from vk_pipeline.testing.databases import scratch_database
from vk_pipeline.testing.processes import EmulatorProcess
from vk_pipeline.testing.workbooks import SHEET_HEAD, SHEET_PATH, SHEET_TAIL, write_book_parts

sys.path.insert(0, str(Path(__file__).parent))
from refresh_scale import Stack, peak_rss_mb

GOOD_GROUPS = 20


# -- files ------------------------------------------------------------------------------------


def write_bomb(path: Path, rows: int = 2_500_000, cols: int = 8) -> None:
    """One sheet of rows x cols numeric cells, streamed into the zip (never held in memory)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        write_book_parts(z)
        row = "<row>" + "<c><v>1</v></c>" * cols + "</row>"
        block = (row * 10_000).encode()
        with z.open(SHEET_PATH, "w", force_zip64=True) as sheet:
            sheet.write(SHEET_HEAD.encode())
            for _ in range(rows // 10_000):
                sheet.write(block)
            sheet.write(SHEET_TAIL.encode())


def write_big(path: Path, lines: int = 4_000_000) -> None:
    with path.open("wb") as f:
        chunk = b"".join(b"zerno_%05d\n" % (i % 100_000) for i in range(100_000))
        for _ in range(lines // 100_000):
            f.write(chunk)


def age(path: Path, seconds: float = 120) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


# -- part 1 -----------------------------------------------------------------------------------


def sensor_ticks(instance: dg.DagsterInstance) -> list[object]:
    from dagster._core.scheduler.instigation import InstigatorType

    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    ticks = []
    for state in states:
        if state.instigator_name == "group_file_sensor":
            ticks.extend(
                instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=50)
            )
    return sorted(ticks, key=lambda t: t.timestamp)


def all_rows(url: str, schemas: tuple[str, ...]) -> str:
    out = []
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = ANY(%s) AND table_type = 'BASE TABLE'",
            (list(schemas),),
        ).fetchall()
        for schema, table in tables:
            for (row,) in conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t'):
                out.append(row)
    return "\n".join(out)


def grep_tree(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.name != "secret.env":
            try:
                if needle in path.read_bytes():
                    hits.append(str(path.relative_to(root)))
            except OSError:
                continue
    return hits


def part_drops(admin: str, timeout: float) -> None:
    spec = WorldSpec(seed=19, groups=40, posts=80, comments=200, special_groups=False)
    world = World(spec)
    secret_token = "vk1.a." + secrets.token_urlsafe(48)
    with ExitStack() as stack:
        server = stack.enter_context(EmulatorProcess(spec, rate=3.0, tokens=[DEMO_TOKEN]))
        data_url = stack.enter_context(scratch_database(admin, "vk_hostile"))
        dagster_db = stack.enter_context(scratch_database(admin, "vk_hostile_dagster"))
        dagster_url = sqlalchemy_postgres_url(dagster_db)
        PostgresResource(database_url=data_url).ensure_schema()
        close_pools()
        home = Path(tempfile.mkdtemp(prefix="vk_hostile_home_"))
        stack.callback(lambda: shutil.rmtree(home, ignore_errors=True))
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
        drops = home / "drops"
        drops.mkdir()
        outside = home / "outside"
        outside.mkdir()
        secret = outside / "secret.env"
        secret.write_text(f"VK_ACCESS_TOKEN={secret_token}\nDATABASE_URL=postgresql://x\n")

        t0 = time.monotonic()
        write_bomb(drops / "bomb.xlsx")
        write_big(drops / "big.txt")
        (drops / "secret.txt").symlink_to(secret)
        good = world.group_ids()[:GOOD_GROUPS]
        (drops / "good.txt").write_text("".join(f"club{g}\n" for g in good))
        for p in drops.iterdir():
            age(p)
        with zipfile.ZipFile(drops / "bomb.xlsx") as z:
            unpacked = sum(i.file_size for i in z.infolist())
        print(
            f"files written in {time.monotonic() - t0:.1f} s: bomb.xlsx "
            f"{(drops / 'bomb.xlsx').stat().st_size / 2**20:.2f} MB zipped, "
            f"{unpacked / 2**20:.0f} MB unpacked (20 M cells); big.txt "
            f"{(drops / 'big.txt').stat().st_size / 2**20:.0f} MB; secret.txt -> {secret}; "
            f"good.txt {GOOD_GROUPS} groups",
            flush=True,
        )

        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_POSTGRES_URL": dagster_url,
            "DATABASE_URL": data_url,
            "VK_API_BASE_URL": server.base_url,
            "VK_ACCESS_TOKENS": DEMO_TOKEN,
            "VK_PIPELINE_DROP_DIR": str(drops),
            "VK_PIPELINE_DROP_SETTLE_SECONDS": "1",
        }
        env.pop("VK_ACCESS_TOKEN", None)
        os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "DAGSTER_POSTGRES_URL")})
        logs = home / "logs"
        logs.mkdir()
        processes = Stack(env, logs)
        server.reset_stats()
        with dg.DagsterInstance.from_config(str(home)) as instance:
            processes.start()
            stack.callback(processes.stop)
            code_pid = processes.procs["code"].pid
            deadline = time.monotonic() + timeout
            peak = 0.0
            while time.monotonic() < deadline:
                peak = max(peak, peak_rss_mb(code_pid))
                ticks = sensor_ticks(instance)
                done = [t for t in ticks if t.end_timestamp]
                if len(done) >= 2:
                    break
                time.sleep(1)
            requests_in_ticks = server.stats()["http_requests"]
            runs = instance.get_runs()
            run_deadline = time.monotonic() + timeout
            while time.monotonic() < run_deadline and any(
                not r.is_finished for r in instance.get_runs()
            ):
                peak = max(peak, peak_rss_mb(code_pid))
                time.sleep(2)
            runs = instance.get_runs()
            peak = max(peak, peak_rss_mb(code_pid))
            keys = list(instance.get_dynamic_partitions(GROUP_PARTITIONS_NAME))
            ticks = sensor_ticks(instance)
            processes.stop()

        print("\nsensor ticks (daemon, code server):")
        for t in ticks:
            took = (t.end_timestamp - t.timestamp) if t.end_timestamp else float("nan")
            reason = (t.skip_reason or "").replace("\n", " ")[:300]
            print(f"  {t.status.value:8} {took:6.2f} s  runs {len(t.run_ids)}  {reason}")
        print(f"code server peak RSS (VmHWM): {peak:.0f} MB")
        print(
            f"partitions: {len(keys)} (good file's groups: {sorted(map(str, good)) == sorted(keys)})"
        )
        print(
            f"runs: {len(runs)}, "
            + ", ".join(f"{r.status.value}" for r in runs)
            + f"; VK requests by the time two ticks ended (the run's included): {requests_in_ticks}"
        )
        with psycopg.connect(data_url) as conn:
            files = conn.execute(
                "SELECT file_name, groups_found, rejected_count, coalesce(file_error, '') "
                "FROM vk.group_files ORDER BY file_name"
            ).fetchall()
        print("vk.group_files:")
        for name, found, rejected, error in files:
            print(f"  {name}: {found} groups, {rejected} rejected lines; {error or 'read'}")
        needle = secret_token.encode()
        hits = {
            "data tables (vk.*)": needle.decode() in all_rows(data_url, ("vk",)),
            "Dagster tables (event log, ticks, runs)": needle.decode()
            in all_rows(dagster_db, ("public",)),
        }
        files_hit = grep_tree(home, needle) + grep_tree(home, secret_token[:16].encode())
        print("secret token found in:")
        for where, hit in hits.items():
            print(f"  {where}: {int(hit)}")
        print(f"  files under DAGSTER_HOME (logs, compute logs, storage): {len(set(files_hit))}")
        print("the sensor's own account of its VK requests (tick logs):")
        for path in sorted(home.rglob("*")):
            if path.is_file() and not path.is_symlink():
                text = path.read_bytes().decode("utf-8", "replace")
                for said in re.findall(r"resolved \d+ file\(s\) with \d+ VK request\(s\)", text):
                    print(f"  {said}")


# -- part 2 -----------------------------------------------------------------------------------


def part_double_kill(admin: str) -> None:
    from vk_pipeline.assets import vk_assets
    from vk_pipeline.assets.analysis import analysis_assets
    from vk_pipeline.assets.checks import vk_checks
    from vk_pipeline.emulator import EmulatorServer
    from vk_pipeline.jobs import crawl_job
    from vk_pipeline.resources import build_resources
    from vk_pipeline.testing import crawl
    from vk_pipeline.testing.truth import matches_truth

    world = World(WorldSpec(seed=19, groups=3, posts=30, comments=300, special_groups=False))
    with ExitStack() as stack:
        server = EmulatorServer(
            world, rate=1000, group_rate=1000, service_rate=1000, tokens=[DEMO_TOKEN]
        ).start()
        stack.callback(server.stop)
        url = stack.enter_context(scratch_database(admin, "vk_blip"))
        resources = build_resources(
            database_url=url,
            tokens=DEMO_TOKEN,
            vk_api_base_url=server.base_url,
            requests_per_second=1000,
        )
        instance = stack.enter_context(dg.instance_for_test())
        keys = [str(g) for g in world.group_ids()]
        crawl.register(instance, keys)
        job = dg.Definitions(
            assets=[*vk_assets, *analysis_assets],
            asset_checks=vk_checks,
            jobs=[crawl_job],
            resources=resources,
        ).resolve_job_def(crawl_job.name)
        kills: list[str] = []

        def terminate(active_only: bool) -> int:
            with psycopg.connect(url, autocommit=True) as conn:
                return len(
                    conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND application_name = 'vk_pipeline' AND pid <> "
                        "pg_backend_pid()" + (" AND state <> 'idle'" if active_only else "")
                    ).fetchall()
                )

        def saboteur() -> None:
            with psycopg.connect(url, autocommit=True) as lock:
                while not lock.execute("SELECT to_regclass('vk.comments')").fetchone()[0]:
                    time.sleep(0.05)
                with lock.transaction():
                    lock.execute("LOCK TABLE vk.comments IN EXCLUSIVE MODE")
                    while not lock.execute(
                        "SELECT count(*) FROM pg_locks WHERE relation = 'vk.comments'::regclass "
                        "AND NOT granted"
                    ).fetchone()[0]:
                        time.sleep(0.05)
                    kills.append(f"kill 1 (comments step writing): {terminate(True)} backend(s)")
            while not instance.get_event_records(
                dg.EventRecordsFilter(event_type=dg.DagsterEventType.STEP_UP_FOR_RETRY), limit=1
            ):
                time.sleep(0.05)
            kills.append(f"kill 2 (during the retry wait): {terminate(False)} backend(s)")

        thread = threading.Thread(target=saboteur, daemon=True)
        thread.start()
        started = time.monotonic()
        result = job.execute_in_process(
            instance=instance,
            tags=crawl.range_tags(keys),
            run_config=crawl.crawl_run_config({"as_of": crawl.as_of(world)}, log_level="WARNING"),
            raise_on_error=False,
        )
        took = time.monotonic() - started
        thread.join(timeout=30)
        starts: dict[str, int] = {}
        for e in result.all_events:
            if e.event_type in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_RESTARTED):
                starts[e.step_key] = starts.get(e.step_key, 0) + 1
        close_pools(url)
        print("\ndouble database kill:")
        for k in kills:
            print(f"  {k}")
        print(f"  step attempts: {starts}")
        print(f"  outcome: {'success' if result.success else 'FAILURE'} in {took:.1f} s")
        print(f"  data equals VK: {matches_truth(world, url)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="admin URL of a server (default: embedded)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait per phase")
    parser.add_argument("--only", choices=["drops", "kill"])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    admin = resolve_database_url(args.database_url)
    if args.only != "kill":
        part_drops(admin, args.timeout)
    if args.only != "drops":
        part_double_kill(admin)


if __name__ == "__main__":
    main()
