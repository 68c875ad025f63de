"""The daily refresh at the scale users run: 2,000 groups through a real daemon and code server.

An emulator world of `--groups` communities shaped like real ones (a long tail: the generator draws
wall sizes from a log-normal, so most groups are small and quiet, a few large and busy), dated so
that the crawl's clock (now) sees it as VK would. Every group is registered as a partition; then
`daily_refresh` is launched by the schedule's own tick through `dagster-daemon` and
`dagster code-server start` on Postgres instance storage (as `make dev` runs them), once for the
first load and, after the world advanced a day, once for the refresh. Each pass waits until every
run ended, the crawl runs of the tick and the runs the daemon launched after them (the analysis
tables follow the crawls through their automation condition), and no new run came for 90 s.

Figures per pass: tick evaluation and run submission time, wall time from the tick to the last run
done, VK requests and the VK-bound time (requests / (3 per second × tokens)), wall / bound, Dagster
event-log rows and data rows written per group, peak memory of the daemon and of a run worker,
where one run's time goes (its phases, from the run's own event log), and the machine's CPU time
from the tick to the last run done, by kind of process (run workers, daemon, code server,
PostgreSQL, the VK emulator), to tell a pass bound by VK from one bound by the machine.

    .venv/bin/python benchmarks/refresh_scale.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python benchmarks/refresh_scale.py --groups 50 --posts 18000 --comments 140000 ...

The schedule fires at a cron minute the script picks (the next whole minute, UTC); the code server
and daemon are restarted between passes with the next pass's minute, as a new day's daemon would be.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.events import DagsterEventType

from vk_pipeline.dev import commands, free_port, stop_process_group
from vk_pipeline.emulator import DEMO_TOKEN, World, WorldSpec
from vk_pipeline.local import PROJECT_ROOT, sqlalchemy_postgres_url
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.storage import PostgresResource, resolve_database_url
from vk_pipeline.testing.databases import scratch_database
from vk_pipeline.testing.processes import EmulatorProcess
from vk_pipeline.testing.truth import matches_truth, stored, truth

VK_RATE = 3.0
RUN_MARKS = {
    DagsterEventType.RUN_ENQUEUED: "RUN_ENQUEUED",
    DagsterEventType.RUN_STARTING: "RUN_STARTING",
    DagsterEventType.RUN_START: "RUN_START",
    DagsterEventType.RUN_SUCCESS: "RUN_SUCCESS",
    DagsterEventType.RUN_FAILURE: "RUN_FAILURE",
}
STEP_MARKS = {
    DagsterEventType.STEP_START,
    DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_FAILURE,
}
WORKSPACE = PROJECT_ROOT / "deploy" / "workspace.yaml"
SCHEDULE = "daily_refresh"


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Processes by kind, from their command line: where a pass's CPU went.
KINDS = (
    (b"execute_run", "run workers"),
    # The code server starts each run's worker with multiprocessing's spawn.
    (b"spawn_main", "run workers"),
    (b"refresh_scale", "this benchmark"),
    (b"dagster-daemon", "daemon"),
    (b"api\x00grpc", "code server"),
    (b"code-server", "code server"),
    (b"vk_pipeline.emulator", "VK emulator"),
    (b"postgres", "postgres"),
)


def _kind(cmd: bytes) -> str:
    kind = next((kind for needle, kind in KINDS if needle in cmd), "other")
    if kind != "postgres":
        return kind
    # A backend's title names its database: Dagster's own (scratch_database's
    # `vk_scale_dagster_…`) or the data's.
    if b"autovacuum" in cmd:
        return "postgres, autovacuum"
    if b"_dagster_" in cmd:
        return "postgres, Dagster's database"
    if b"vk_scale_" in cmd:
        return "postgres, the data's database"
    return kind


class WorkerWatch(threading.Thread):
    """Polls the run workers (the code server's descendants other than its gRPC server) for
    their peak resident memory, and every process for the CPU time it has used, by kind."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_mb = 0.0
        self.root: int | None = None
        self._done = threading.Event()
        # pid -> (kind, [(wall time, CPU seconds used so far)])
        self.cpu: dict[int, tuple[str, list[tuple[float, float]]]] = {}

    def run(self) -> None:
        while not self._done.wait(0.5):
            parents: dict[int, int] = {}
            now = time.time()
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit():
                    try:
                        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                        parents[int(proc.name)] = int(fields[1])
                        used = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
                    except (OSError, ValueError, IndexError):
                        continue
                    pid = int(proc.name)
                    if pid not in self.cpu:
                        try:
                            cmd = (proc / "cmdline").read_bytes()
                        except OSError:
                            continue
                        self.cpu[pid] = (_kind(cmd), [])
                    self.cpu[pid][1].append((now, used))
            if self.root is None:
                continue
            for pid in parents:
                up, depth = parents.get(pid), 0
                while up and up != self.root and depth < 10:
                    up, depth = parents.get(up), depth + 1
                # The code server's own gRPC server is not a run worker (kinds read above).
                if up == self.root and pid in self.cpu and self.cpu[pid][0] != "code server":
                    self.peak_mb = max(self.peak_mb, peak_rss_mb(pid))

    def cpu_by_kind(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds each kind of process used between `start` and `end` (a process that
        ended between two polls loses up to half a second)."""
        totals: dict[str, float] = {}
        for kind, samples in self.cpu.values():
            before = [used for t, used in samples if t <= start]
            upto = [used for t, used in samples if t <= end]
            if not upto:
                continue
            used = upto[-1] - (before[-1] if before else 0.0)
            totals[kind] = round(totals.get(kind, 0.0) + used, 1)
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)


@dataclass
class Stack:
    """A code server and a daemon for one pass, on an instance in `home`."""

    env: dict[str, str]
    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self) -> None:
        port = free_port()
        env = {
            **self.env,
            "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
            "DAGSTER_CODE_SERVER_PORT": str(port),
        }
        bin_dir = Path(sys.executable).parent
        argv = commands(str(WORKSPACE), "127.0.0.1", free_port())
        for name in ("code", "daemon"):
            out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (the child holds it)
            self.procs[name] = subprocess.Popen(
                [str(bin_dir / argv[name][0]), *argv[name][1:]],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            out.close()
            if name == "code":
                deadline = time.monotonic() + 300
                while not _accepts(port):
                    if time.monotonic() > deadline or self.procs[name].poll() is not None:
                        raise RuntimeError(f"code server did not come up: {self.log_dir}/code.log")
                    time.sleep(0.5)

    def daemon_peak_mb(self) -> float:
        return peak_rss_mb(self.procs["daemon"].pid) if "daemon" in self.procs else 0.0

    def stop(self) -> None:
        for name in ("daemon", "code"):
            if (proc := self.procs.pop(name, None)) is not None:
                stop_process_group(proc, 30)


def _accepts(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def next_minute_cron(lead_seconds: float = 150) -> tuple[str, datetime]:
    """A cron expression (UTC) for the first whole minute at least `lead_seconds` away: the code
    server and the daemon must be up before it (the scheduler starts from the time it first sees
    the schedule)."""
    at = (datetime.now(UTC) + timedelta(seconds=lead_seconds + 60)).replace(second=0, microsecond=0)
    return f"{at.minute} {at.hour} * * *", at


def table_writes(url: str) -> int:
    """Rows inserted, updated or deleted in the data tables since the server started."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables"
            " WHERE schemaname = 'vk'"
        ).fetchone()
    return int(row[0]) if row else 0


def event_rows(dagster_url: str, run_ids: list[str]) -> int:
    with psycopg.connect(dagster_url.replace("+psycopg2", "")) as conn:
        row = conn.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = ANY(%s)", (run_ids,)
        ).fetchone()
    return int(row[0]) if row else 0


@dataclass
class Pass:
    label: str
    tick_seconds: float = 0.0
    runs: int = 0
    wall_seconds: float = 0.0
    requests: int = 0
    bound_seconds: float = 0.0
    event_rows: int = 0
    data_rows: int = 0
    daemon_mb: float = 0.0
    worker_mb: float = 0.0
    failed_runs: int = 0
    follow_up_runs: int = 0
    exact: str = ""
    cpu_seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    timeline: list[str] = field(default_factory=list)


def wait_for_tick(instance: dg.DagsterInstance, after: float, timeout: float) -> Any:
    """The first completed tick of the schedule that started after `after`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for state in instance.all_instigator_state():
            if state.instigator_name != SCHEDULE:
                continue
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=3)
            for tick in ticks:
                if tick.timestamp >= after and tick.status.value in ("SUCCESS", "FAILURE"):
                    return tick
        time.sleep(1)
    raise TimeoutError("the schedule did not tick")


def wait_for_runs(instance: dg.DagsterInstance, run_ids: list[str], timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        records = instance.get_run_records(filters=dg.RunsFilter(run_ids=run_ids))
        if records and all(r.dagster_run.is_finished for r in records):
            return records
        if time.monotonic() > deadline:
            raise TimeoutError("runs did not finish")
        time.sleep(2)


def wait_for_followers(
    instance: dg.DagsterInstance, since: float, known: list[str], timeout: float, quiet: float = 90
) -> list[Any]:
    """Runs the daemon launched after `since` besides `known` (the analysis tables' automation
    runs follow the crawls): waits until every one ended and none new came for `quiet` seconds
    (the automation sensor evaluates every 30 s)."""
    deadline = time.monotonic() + timeout
    settled_at: float | None = None
    while True:
        records = [
            r
            for r in instance.get_run_records(
                filters=dg.RunsFilter(created_after=datetime.fromtimestamp(since, UTC))
            )
            if r.dagster_run.run_id not in known
        ]
        if all(r.dagster_run.is_finished for r in records):
            settled_at = settled_at or time.monotonic()
            if time.monotonic() - settled_at >= quiet:
                return records
        else:
            settled_at = None
        if time.monotonic() > deadline:
            raise TimeoutError("follow-up runs did not finish")
        time.sleep(3)


def run_phases(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Where one run's time went: queue and start-up, each step, and what lies between."""
    logs = instance.all_logs(run_id)
    marks: dict[str, float] = {}
    steps: dict[str, list[float]] = {}
    for entry in logs:
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type
        if kind in RUN_MARKS:
            marks.setdefault(RUN_MARKS[kind], entry.timestamp)
        if kind in STEP_MARKS and entry.step_key:
            steps.setdefault(entry.step_key, []).append(entry.timestamp)
    end = marks.get("RUN_SUCCESS") or marks.get("RUN_FAILURE") or 0.0
    phases: dict[str, float] = {}
    if "RUN_ENQUEUED" in marks and "RUN_STARTING" in marks:
        phases["queued"] = marks["RUN_STARTING"] - marks["RUN_ENQUEUED"]
    if "RUN_STARTING" in marks and "RUN_START" in marks:
        phases["worker start"] = marks["RUN_START"] - marks["RUN_STARTING"]
    in_steps = 0.0
    for key, times in steps.items():
        phases[f"step {key}"] = max(times) - min(times)
        in_steps += max(times) - min(times)
    if "RUN_START" in marks and end:
        phases["between steps"] = max(0.0, end - marks["RUN_START"] - in_steps)
    return {k: round(v, 2) for k, v in phases.items()}


def _subset_keys(subset: Any) -> list[str]:
    value = subset.value
    return [] if isinstance(value, bool) else list(value.get_partition_keys())


def true_leaves(node: Any, path: str = "") -> list[str]:
    """The leaves of an evaluation tree that were true, with their partitions (the first three)."""
    snap = node.condition_snapshot
    name = f"{path}/{snap.label or snap.name or snap.class_name}"
    keys = _subset_keys(node.true_subset)
    if not node.child_evaluations:
        return [f"{name}: {len(keys)} {keys[:3]}"] if keys else []
    return [leaf for child in node.child_evaluations for leaf in true_leaves(child, name)]


def why_launched(instance: dg.DagsterInstance, run: Any) -> str:
    """For a run the automation sensor launched: the leaves of its asset's condition that were
    true on the evaluation that requested it. A diagnosis only: it never ends the benchmark."""
    try:
        with partition_loading_context(dynamic_partitions_store=instance):
            return _why_launched(instance, run)
    except Exception as error:
        return f"not found ({type(error).__name__}: {error})"


def _why_launched(instance: dg.DagsterInstance, run: Any) -> str:
    for key in sorted(run.asset_selection or [], key=str):
        for record in instance.schedule_storage.get_auto_materialize_asset_evaluations(key, 200):
            found = record.get_evaluation_with_run_ids()
            # A request the sensor turned into a backfill names the backfill, not its runs.
            if not {run.run_id, run.tags.get("dagster/backfill")} & set(found.run_ids):
                continue
            leaves = "; ".join(true_leaves(found.evaluation))
            return f"{key.to_user_string()} evaluation {record.evaluation_id}: {leaves}"
    return "no evaluation names it"


def run_timeline(
    records: list[Any], since: float, instance: dg.DagsterInstance | None = None
) -> list[str]:
    """Each run's job, groups and start / end, in seconds after the tick, in order of start; for
    a run the automation sensor launched, why (when `instance` is given)."""
    lines = []
    for r in sorted(records, key=lambda r: r.start_time or 0.0):
        run = r.dagster_run
        groups = run.tags.get("vk_pipeline/groups") or (
            f"{run.tags.get('dagster/asset_partition_range_start', '')}.."
            f"{run.tags.get('dagster/asset_partition_range_end', '')}"
        )
        line = (
            f"{run.job_name} [{groups}] {(r.start_time or since) - since:.1f}-"
            f"{(r.end_time or since) - since:.1f}"
        )
        automated = {"dagster/from_automation_condition", "dagster/backfill"} & set(run.tags)
        if instance is not None and automated:
            line += f" (launched because {why_launched(instance, run)})"
        lines.append(line)
    return lines


def run_pass(
    label: str,
    instance: dg.DagsterInstance,
    env: dict[str, str],
    log_dir: Path,
    server: EmulatorProcess,
    data_url: str,
    dagster_url: str,
    groups: int,
    tokens: int,
    timeout: float,
) -> Pass:
    cron, at = next_minute_cron()
    stack = Stack({**env, "VK_PIPELINE_REFRESH_CRON": cron}, log_dir)
    result = Pass(label)
    watch = WorkerWatch()
    server.reset_stats()
    before_rows = table_writes(data_url)
    watch.start()
    try:
        stack.start()
        watch.root = stack.procs["code"].pid
        print(f"  {label}: schedule fires at {at:%H:%M} UTC", flush=True)
        tick = wait_for_tick(
            instance, at.timestamp() - 5, timeout=(at - datetime.now(UTC)).total_seconds() + 600
        )
        result.tick_seconds = (
            round(tick.end_timestamp - tick.timestamp, 1) if tick.end_timestamp else 0.0
        )
        run_ids = list(tick.run_ids)
        result.runs = len(run_ids)
        print(f"  {label}: tick {result.tick_seconds} s, {len(run_ids)} runs", flush=True)
        records = wait_for_runs(instance, run_ids, timeout)
        crawl_records = records
        followers = wait_for_followers(instance, tick.timestamp, run_ids, timeout)
        result.follow_up_runs = len(followers)
        records = [*records, *followers]
        run_ids = [*run_ids, *(r.dagster_run.run_id for r in followers)]
        last_end = max(r.end_time or 0.0 for r in records)
        result.wall_seconds = round(last_end - tick.timestamp, 1)
        result.failed_runs = sum(
            r.dagster_run.status != dg.DagsterRunStatus.SUCCESS for r in records
        )
        result.requests = int(server.stats()["http_requests"])
        result.bound_seconds = round(result.requests / (VK_RATE * tokens), 1)
        result.event_rows = event_rows(dagster_url, run_ids)
        result.data_rows = table_writes(data_url) - before_rows
        result.daemon_mb = round(stack.daemon_peak_mb(), 1)
        biggest = max(
            crawl_records, key=lambda r: int(r.dagster_run.tags.get("vk_pipeline/groups", "0"))
        )
        result.phases = run_phases(instance, biggest.dagster_run.run_id)
        result.timeline = run_timeline(records, tick.timestamp, instance)
        result.phases["(groups in this run)"] = float(
            biggest.dagster_run.tags.get("vk_pipeline/groups", "0")
        )
        time.sleep(1)  # a last poll after the last run ended
        result.cpu = watch.cpu_by_kind(tick.timestamp, last_end)
        result.cpu_seconds = round(sum(result.cpu.values()), 1)
    finally:
        watch.stop()
        result.worker_mb = round(watch.peak_mb, 1)
        stack.stop()
    return result


def world_spec(groups: int, posts: int, comments: int, seed: int) -> WorldSpec:
    """A long-tailed world dated so that the crawl's clock (now) sees it as VK would: its newest
    posts from yesterday, and after the advance, from today."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    return WorldSpec(
        seed=seed,
        groups=groups,
        posts=posts,
        comments=comments,
        special_groups=True,
        now=int(start.timestamp()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="admin URL of a server (default: embedded)")
    parser.add_argument("--groups", type=int, default=2000)
    parser.add_argument("--posts", type=int, default=60_000)
    parser.add_argument("--comments", type=int, default=300_000)
    parser.add_argument("--tokens", type=int, default=1, help="user tokens in the pool")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="per pass, seconds")
    parser.add_argument("--no-truth", action="store_true", help="skip the comparison with VK")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    spec = world_spec(args.groups, args.posts, args.comments, args.seed)
    tokens = [DEMO_TOKEN, *(f"refresh-scale-token-{i}" for i in range(1, args.tokens))]
    admin = resolve_database_url(args.database_url)
    figures: list[Pass] = []
    with ExitStack() as stack:
        print(
            f"world: {args.groups} groups, {args.posts} posts, {args.comments} comments", flush=True
        )
        world = None if args.no_truth else World(spec)
        server = stack.enter_context(EmulatorProcess(spec, rate=VK_RATE, tokens=tokens))
        data_url = stack.enter_context(scratch_database(admin, "vk_scale"))
        dagster_db = stack.enter_context(scratch_database(admin, "vk_scale_dagster"))
        dagster_url = sqlalchemy_postgres_url(dagster_db)
        PostgresResource(database_url=data_url).ensure_schema()
        home = Path(tempfile.mkdtemp(prefix="vk_scale_home_"))
        stack.callback(
            lambda: shutil.rmtree(home, ignore_errors=True) if not args.keep_logs else None
        )
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
        drops = home / "drops"
        drops.mkdir()
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_POSTGRES_URL": dagster_url,
            "DATABASE_URL": data_url,
            "VK_API_BASE_URL": server.base_url,
            "VK_ACCESS_TOKENS": ",".join(tokens),
            "VK_PIPELINE_DROP_DIR": str(drops),
            "VK_PIPELINE_REFRESH_TIMEZONE": "UTC",
        }
        env.pop("VK_ACCESS_TOKEN", None)
        os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "DAGSTER_POSTGRES_URL")})
        with dg.DagsterInstance.from_config(str(home)) as instance:
            keys = [str(100_001 + i) for i in range(args.groups + 5)]
            instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, keys)
            for label in ("first load", "refresh after a day"):
                if label != "first load":
                    changes = server.advance(world, days=1) if world else _advance_only(server)
                    print(
                        f"  a day of changes: { {k: v for k, v in changes.items() if isinstance(v, int)} }"
                    )
                result = run_pass(
                    label,
                    instance,
                    env,
                    home,
                    server,
                    data_url,
                    dagster_url,
                    args.groups,
                    len(tokens),
                    args.timeout,
                )
                if world is not None:
                    result.exact = exactness(world, data_url)
                figures.append(result)
                print(json.dumps(result.__dict__), flush=True)
        if args.keep_logs:
            print(f"logs kept in {home}")
    report(figures, args.groups, len(tokens))
    if args.json:
        Path(args.json).write_text(json.dumps([f.__dict__ for f in figures], indent=2))


def exactness(world: World, url: str) -> str:
    """'yes' when the store equals VK; else whether the difference is only VK's silent changes
    (a comment edited, or deleted under its replies, while comments.count stayed), which the
    staleness cycle re-reads within verify_days."""
    if matches_truth(world, url):
        return "yes"
    posts, comments = stored(url)
    true_posts, true_comments = truth(world)
    with psycopg.connect(url) as conn:
        synced = {
            (g, p): n
            for g, p, n in conn.execute("SELECT group_id, id, comments_synced_count FROM vk.posts")
        }
    counts = {
        (g, p["id"]): p["comments"]["count"] for g in world.group_ids() for p in world.posts(g)
    }
    owner_post = {
        (g, c["id"]): (g, p["id"])
        for g in world.group_ids()
        for p in world.posts(g)
        for c in world.comments(g, p["id"])
    }
    differing = {owner_post.get(k) for k in set(comments) ^ set(true_comments)}
    differing |= {
        owner_post.get(k)
        for k in set(comments) & set(true_comments)
        if comments[k] != true_comments[k]
    }
    differing.discard(None)
    silent = {k for k in differing if synced.get(k) == counts.get(k)}
    if posts == true_posts and silent == differing:
        return f"yes, but for {len(silent)} posts' silent changes (verify_days cycle)"
    return f"NO ({len(set(posts) ^ set(true_posts))} posts, {len(differing - silent)} posts' comments differ)"


def _advance_only(server: EmulatorProcess) -> dict[str, Any]:
    import httpx

    response = httpx.post(f"{server.url}/_emulator/advance", json={"days": 1}, timeout=600)
    response.raise_for_status()
    return response.json()


def report(figures: list[Pass], groups: int, tokens: int) -> None:
    print(f"\n{groups} groups, {tokens} token(s) at {VK_RATE:g} requests/s each")
    print(
        "| pass | runs | tick s | requests | VK-bound s | wall s | wall / bound | event rows / group | data rows / group | daemon MB | worker MB | equals VK |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for f in figures:
        ratio = f.wall_seconds / f.bound_seconds if f.bound_seconds else float("nan")
        print(
            f"| {f.label} | {f.runs} + {f.follow_up_runs}{f' ({f.failed_runs} failed)' if f.failed_runs else ''} | {f.tick_seconds} | {f.requests} | {f.bound_seconds} | {f.wall_seconds} | "
            f"{ratio:.2f} | {f.event_rows / groups:.1f} | {f.data_rows / groups:.1f} | {f.daemon_mb} | {f.worker_mb} | {f.exact or '-'} |"
        )
    for f in figures:
        print(f"\nwhere one run of the {f.label} went (seconds): {json.dumps(f.phases)}")
        print(f"runs of the {f.label} (seconds after the tick): {'; '.join(f.timeline)}")
        cores = os.cpu_count() or 1
        print(
            f"CPU of the {f.label} (seconds, tick to last run done): {f.cpu_seconds} of the "
            f"{cores} cores' {cores * f.wall_seconds:.1f}; by process: {json.dumps(f.cpu)}"
        )


if __name__ == "__main__":
    main()
