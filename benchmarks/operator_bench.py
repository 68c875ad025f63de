"""Figures for issue 22: one bad partition key among ten groups, and checks on a correct load and
on a damaged one.

Part 1 runs `make dev` (`python -m vk_pipeline.dev`: code server, webserver, daemon, emulator
with the demo world) on fresh databases, adds a group id VK does not serve and a key typed as
the UI's "add partition" box takes it (`football_perm`), launches one ranged `crawl_groups` run
over all eleven keys through the webserver's GraphQL (as a Materialize of the range does), waits
until the daemon is quiet, and prints: the runs launched (with retries and the analysis runs the
automation sensor launched), the partitions materialized per asset, the check results per
partition, what became of the bad key. With `--shots DIR` it saves screenshots of the asset graph
and of the `posts` asset's page (Debian's chromium driven by Playwright).

Part 2 crawls the demo world in process with every check, then damages the database in five
known ways and runs the checks again; it also rewrites VK's comment counts within what VK
documents (deleted comments counted or not) to show the checks stay quiet there.

    .venv/bin/python benchmarks/operator_bench.py [--shots /work/notes/shots] [--skip-dev]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg

from vk_pipeline.assets import vk_assets
from vk_pipeline.assets.analysis import analysis_assets
from vk_pipeline.assets.checks import CHECKS, vk_checks
from vk_pipeline.automation.schedules import refresh_requests
from vk_pipeline.dev import free_port
from vk_pipeline.emulator import DEMO_TOKEN, World
from vk_pipeline.local import demo_world, sqlalchemy_postgres_url
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.resources import build_resources
from vk_pipeline.testing.crawl import as_of, range_tags
from vk_pipeline.testing.databases import create_database, drop_database, resolve_database_url
from vk_pipeline.testing.processes import EmulatorProcess

ROOT = Path(__file__).resolve().parent.parent
BAD_KEY = "football_perm"
UNKNOWN_GROUP = "987654321"
ASSETS = ["groups", "posts", "comments", "post_stats", "group_activity_daily"]
CHROMIUM = "/usr/bin/chromium"


def wait_for(condition: Any, timeout: float, what: str, every: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise TimeoutError(f"{what} within {timeout:.0f} s")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


# -- part 1: the daemon path -------------------------------------------------------------------


def dev_part(admin: str, shots: Path | None) -> None:
    from dagster_graphql import DagsterGraphQLClient

    data, dagster_db = create_database(admin, "vk_opb"), create_database(admin, "vk_opbdg")
    home = Path(tempfile.mkdtemp(prefix="vk_operator_bench_"))
    port, emulator_port = free_port(), free_port()
    env = {
        **os.environ,
        "VK_PIPELINE_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
        "DATABASE_URL": data,
        "DAGSTER_POSTGRES_URL": dagster_db,
    }
    env.pop("VK_ACCESS_TOKEN", None)
    log = (home / "dev.log").open("wb")
    command = [sys.executable, "-m", "vk_pipeline.dev", "--port", str(port)]
    command += ["--emulator-port", str(emulator_port)]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    storage = {"postgres": {"postgres_url": sqlalchemy_postgres_url(dagster_db)}}
    try:
        started = time.monotonic()
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/server_info"), 240, "make dev up")
        print(f"make dev up in {time.monotonic() - started:.0f} s (UI on port {port})")
        with dg.instance_for_test(overrides={"storage": storage}) as instance:
            registered = list(instance.get_dynamic_partitions(GROUP_PARTITIONS_NAME))
            instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, [UNKNOWN_GROUP, BAD_KEY])
            keys = [*registered, UNKNOWN_GROUP, BAD_KEY]
            print(
                f"partitions: {len(registered)} demo groups + {UNKNOWN_GROUP} (an id VK does not "
                f"serve) + {BAD_KEY!r} (typed into 'add partition') = {len(keys)} keys"
            )
            # What the daily refresh would launch over these keys (evaluated, not launched).
            requests = refresh_requests(keys, "2026-12-07")
            ranges = [
                f"{r.tags['dagster/asset_partition_range_start']}.."
                f"{r.tags['dagster/asset_partition_range_end']}"
                for r in requests
            ]
            print(f"daily_refresh over them: {len(requests)} run request(s), ranges {ranges}")

            client = DagsterGraphQLClient("127.0.0.1", port_number=port)
            t0 = time.monotonic()
            run_id = client.submit_job_execution("crawl_groups", tags=range_tags(keys))
            finished = ("SUCCESS", "FAILURE", "CANCELED")
            wait_for(lambda: client.get_run_status(run_id).value in finished, 600, "the crawl run")
            crawl_seconds = time.monotonic() - t0
            print(
                f"crawl_groups run over {keys[0]}..{keys[-1]}: "
                f"{client.get_run_status(run_id).value} after {crawl_seconds:.1f} s"
            )

            def quiet() -> bool:
                unfinished = instance.get_runs(
                    filters=dg.RunsFilter(
                        statuses=[
                            dg.DagsterRunStatus.QUEUED,
                            dg.DagsterRunStatus.NOT_STARTED,
                            dg.DagsterRunStatus.STARTING,
                            dg.DagsterRunStatus.STARTED,
                        ]
                    )
                )
                analysed = instance.get_materialized_partitions(dg.AssetKey("post_stats"))
                removed = BAD_KEY not in instance.get_dynamic_partitions(GROUP_PARTITIONS_NAME)
                return not unfinished and bool(analysed) and removed

            wait_for(quiet, 300, "analysis built, bad key removed, no run under way", every=5)
            print(f"daemon quiet {time.monotonic() - t0:.0f} s after the launch")
            runs = instance.get_runs()
            print(f"\nruns launched: {len(runs)}")
            for run in reversed(runs):
                trigger = (
                    "automation (backfill)"
                    if "dagster/backfill" in run.tags
                    else "retry"
                    if "dagster/parent_run_id" in run.tags
                    else "GraphQL"
                )
                span = (
                    f"{run.tags.get('dagster/asset_partition_range_start')}.."
                    f"{run.tags.get('dagster/asset_partition_range_end')}"
                    if "dagster/asset_partition_range_start" in run.tags
                    else run.tags.get("dagster/partition", "-")
                )
                print(f"  {run.job_name:<16} {run.status.value:<8} {trigger:<22} partitions {span}")
            print("\npartitions materialized (of the keys still registered):")
            now = instance.get_dynamic_partitions(GROUP_PARTITIONS_NAME)
            for asset in ASSETS:
                done = instance.get_materialized_partitions(dg.AssetKey(asset))
                print(f"  {asset:<22} {len(set(now) & done)} / {len(now)}")
            print(f"bad key {BAD_KEY!r} still a partition: {BAD_KEY in now}")
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("posts"), asset_partitions=[BAD_KEY]),
                limit=1,
            ).records
            if records:
                meta = records[0].asset_materialization.metadata  # type: ignore[union-attr]
                print(f"  its posts materialization says: {meta['skipped'].value}")
            print("\ncheck results per partition (latest):")
            statuses: Counter[str] = Counter()
            for check in CHECKS:
                key = dg.AssetCheckKey(dg.AssetKey(check.asset), check.name)
                infos = instance.event_log_storage.get_asset_check_partition_info([key])
                for info in infos:
                    statuses[info.latest_execution_status.value] += 1
                failed = [
                    i.partition_key for i in infos if i.latest_execution_status.value != "SUCCEEDED"
                ]
                print(
                    f"  {check.name:<38} {len(infos) - len(failed)} / {len(infos)} succeeded"
                    + (f"; not: {failed}" if failed else "")
                )
            print(f"  all: {dict(statuses)}")
            log_lines = [
                line
                for line in (home / "dev.log").read_text(errors="replace").splitlines()
                if BAD_KEY in line
            ]
            print(f"\n`make dev` output lines naming {BAD_KEY!r}: {len(log_lines)}")
            if shots is not None:
                screenshots(port, shots)
            ui_path(client, keys[:3])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()
        drop_database(admin, data)
        drop_database(admin, dagster_db)


def ui_path(client: Any, keys: list[str]) -> None:
    """Materialize in the UI (`__ASSET_JOB` with the VK assets selected) against crawl_groups,
    over the same groups, already loaded."""
    finished = ("SUCCESS", "FAILURE", "CANCELED")
    print(f"\nthe same {len(keys)} loaded groups ({keys[0]}..{keys[-1]}) launched both ways:")
    for job, selection in (
        ("__ASSET_JOB", ["groups", "posts", "comments"]),
        ("crawl_groups", None),
    ):
        started = time.monotonic()
        run_id = client.submit_job_execution(job, tags=range_tags(keys), asset_selection=selection)
        wait_for(lambda r=run_id: client.get_run_status(r).value in finished, 600, job)
        print(
            f"  {job:<14} {client.get_run_status(run_id).value} in "
            f"{time.monotonic() - started:.1f} s from submission"
        )


def screenshots(port: int, shots: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{port}"
    pages = {
        "asset_graph.png": f"{base}/locations/__repository__@vk_pipeline/asset-groups/vk",
        "asset_graph_all.png": f"{base}/asset-groups",
        "posts_overview.png": f"{base}/assets/posts?view=overview",
        "posts_partitions.png": f"{base}/assets/posts?view=partitions",
        # One partition's own metadata: its row count, its preview, its crawl figures.
        "posts_partition_100002.png": f"{base}/assets/posts?view=partitions&partition=100002",
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        for name, url in pages.items():
            page.goto(url, wait_until="networkidle", timeout=60_000)
            skip = page.get_by_role("button", name="Skip")
            if skip.count():
                skip.first.click()
            page.wait_for_timeout(3000)
            page.screenshot(path=str(shots / name), full_page=True)
            print(f"screenshot {shots / name} ({url})")
        browser.close()


# -- part 2: checks on a correct and a damaged load ---------------------------------------------


def evaluate(
    instance: dg.DagsterInstance, resources: dict[str, Any], keys: list[str], checks_only: bool
) -> dict[tuple[str, str], bool]:
    result = dg.materialize(
        [*vk_assets, *analysis_assets, *vk_checks],
        instance=instance,
        resources=resources,
        selection=dg.AssetSelection.all_asset_checks() if checks_only else None,
        tags=range_tags(keys),
        run_config={"ops": {o: {"config": {"as_of": AS_OF}} for o in ("posts", "comments")}}
        if not checks_only
        else None,
    )
    return {
        (e.check_name, e.partition or ""): e.passed for e in result.get_asset_check_evaluations()
    }


AS_OF = ""


def checks_part(admin: str) -> None:
    global AS_OF
    spec = demo_world()
    world = World(spec)
    AS_OF = as_of(world)
    keys = [str(g) for g in world.group_ids()]
    data = create_database(admin, "vk_opc")
    try:
        with EmulatorProcess(spec, rate=1000) as server, dg.instance_for_test() as instance:
            resources = build_resources(
                database_url=data,
                vk_api_base_url=server.base_url,
                tokens=DEMO_TOKEN,
                requests_per_second=1000,
            )
            instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, keys)
            found = evaluate(instance, resources, keys, checks_only=False)
            failed = sorted(k for k, ok in found.items() if not ok)
            print(
                f"\ncorrect load of the demo world ({len(keys)} groups): {len(found)} check "
                f"results, {len(found) - len(failed)} passed, failed: {failed}"
            )
            with psycopg.connect(data, autocommit=True) as conn:
                faithful_variants(conn)
            found = evaluate(instance, resources, keys, checks_only=True)
            failed = sorted(k for k, ok in found.items() if not ok)
            print(
                "VK's comment counts rewritten within what VK documents (deleted comments "
                f"counted, or not) and fixed_post 0: {len(found) - len(failed)} / {len(found)} "
                f"passed, failed: {failed}"
            )
            with psycopg.connect(data, autocommit=True) as conn:
                damage = damage_database(conn, world)
            found = evaluate(instance, resources, keys, checks_only=True)
            failed = sorted(k for k, ok in found.items() if not ok)
            print("damaged database:")
            for what in damage:
                print(f"  - {what}")
            print(f"  {len(found) - len(failed)} / {len(found)} passed; failed:")
            for name, partition in failed:
                print(f"    {name} on {partition}")
    finally:
        drop_database(admin, data)


def faithful_variants(conn: psycopg.Connection[Any]) -> None:
    """VK may count a post's deleted comments or not: set half of the posts with deleted
    comments to 'live only' and half to 'live plus every deleted one'; pin nothing on a group."""
    rows = conn.execute(
        "SELECT owner_id, post_id, count(*) FILTER (WHERE NOT is_deleted),"
        " count(*) FILTER (WHERE is_deleted) FROM vk.comments GROUP BY 1, 2"
        " HAVING count(*) FILTER (WHERE is_deleted) > 0"
    ).fetchall()
    for n, (owner, post, live, dead) in enumerate(rows):
        conn.execute(
            "UPDATE vk.posts SET comments_count = %s WHERE owner_id = %s AND id = %s",
            (live if n % 2 else live + dead, owner, post),
        )
    conn.execute(
        "UPDATE vk.groups SET raw = jsonb_set(raw, '{fixed_post}', '0')"
        " WHERE id = (SELECT min(id) FROM vk.groups WHERE status = 'open')"
    )
    print(f"rewrote comments_count of {len(rows)} posts with deleted comments")


def damage_database(conn: psycopg.Connection[Any], world: World) -> list[str]:
    open_groups = [g for g in world.group_ids() if world.group_kind(g) == "open" and world.posts(g)]
    a, b = open_groups[0], open_groups[1]
    gone = next(g for g in world.group_ids() if world.group_kind(g) == "banned")
    owner, post, cid = conn.execute(
        "SELECT c.owner_id, c.post_id, c.id FROM vk.comments c WHERE c.group_id = %s"
        " AND NOT c.is_deleted AND NOT EXISTS (SELECT 1 FROM vk.comments r"
        "   WHERE r.owner_id = c.owner_id AND r.thread_root_id = c.id)"
        " AND NOT EXISTS (SELECT 1 FROM vk.comments d WHERE d.owner_id = c.owner_id"
        "   AND d.post_id = c.post_id AND d.is_deleted) ORDER BY 2, 3 LIMIT 1",
        (a,),
    ).fetchone()
    conn.execute("DELETE FROM vk.comments WHERE owner_id = %s AND id = %s", (owner, cid))
    (dead_post,) = conn.execute(
        "SELECT post_id FROM vk.comments WHERE group_id = %s AND NOT is_deleted AND post_id <> %s"
        " ORDER BY post_id LIMIT 1",
        (b, post),
    ).fetchone()
    conn.execute(
        "UPDATE vk.posts SET is_deleted = true WHERE owner_id = %s AND id = %s", (-b, dead_post)
    )
    conn.execute(
        "UPDATE vk.posts SET date = now() + interval '2 days'"
        " WHERE owner_id = %s AND id = (SELECT min(id) FROM vk.posts WHERE group_id = %s)",
        (-a, a),
    )
    conn.execute(
        "UPDATE vk.groups SET raw = jsonb_set(raw, '{fixed_post}', '424242') WHERE id = %s", (b,)
    )
    conn.execute("DELETE FROM vk.groups WHERE id = %s", (gone,))
    return [
        f"comment {cid} under post {post} of group {a} deleted from the table",
        f"post {dead_post} of group {b} marked deleted with its comments left live",
        f"the oldest post of group {a} dated two days after it was stored",
        f"group {b}'s fixed_post set to 424242, a post that does not exist",
        f"the groups row of banned group {gone} deleted",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", help="admin URL of a server (default: embedded)")
    parser.add_argument("--shots", type=Path, help="save UI screenshots into this folder")
    parser.add_argument("--skip-dev", action="store_true", help="only the checks part")
    parser.add_argument("--skip-checks", action="store_true", help="only the make dev part")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    admin = resolve_database_url(args.database_url)
    if not args.skip_dev:
        dev_part(admin, args.shots)
    if not args.skip_checks:
        checks_part(admin)


if __name__ == "__main__":
    main()
