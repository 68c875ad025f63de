"""The whole pipeline as real processes, checked the way a user meets it.

The code server, dagster-webserver and dagster-daemon run exactly as `make dev` and
docker-compose.yml run them (`vk_pipeline.dev.Stack`), on Postgres instance storage through the
project's dagster.yaml, against the VK emulator as a process of its own
(`python -m vk_pipeline.emulator`). A user drops a group file, launches a backfill through the
webserver's GraphQL API, evaluates the daily schedule's tick, and looks at the UI in Chromium.
Screenshots and the processes' logs land in test-artifacts/e2e/ (gitignored).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import dagster as dg
import psycopg
import pytest
from dagster_graphql import DagsterGraphQLClient

from vk_pipeline.dev import LOCATION_NAME, Stack, free_port, stop_process_group
from vk_pipeline.emulator import World, WorldSpec
from vk_pipeline.local import sqlalchemy_postgres_url
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.testing.databases import create_database, drop_database

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The emulator process builds the same world from the same arguments; the test reads its truth.
WORLD = WorldSpec(seed=5, groups=6, posts=150, comments=1500, special_groups=False)
EMULATOR_ARGS = ["--seed", "5", "--groups", "6", "--posts", "150", "--comments", "1500"]
EMULATOR_ARGS += ["--no-special-groups", "--rate", "20"]
REPO = {"repositoryLocationName": LOCATION_NAME, "repositoryName": "__repository__"}
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
SHA_TAG = "vk_pipeline/group_file_sha256"
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 300) -> T:
    """Poll until `probe` returns something truthy; a generous timeout only guards a hang."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Deployment:
    stack: Stack
    client: DagsterGraphQLClient
    instance: dg.DagsterInstance
    world: World
    data_url: str
    drops: Path
    logs: Path

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        """A query through the GraphQL client's own transport (it has no backfill method)."""
        return self.client._execute(query, variables)

    def run_status(self, run_id: str) -> str:
        return self.client.get_run_status(run_id).value

    def wait_for_run(self, run_id: str, timeout: float = 300) -> str:
        def finished() -> str | None:
            status = self.run_status(run_id)
            return status if status in FINISHED else None

        return wait_for(f"run {run_id}", finished, timeout)

    def stored(self, group_ids: list[int]) -> dict[int, tuple[int, int]]:
        """group id -> (live posts, live comments) in the data database."""
        with psycopg.connect(self.data_url) as conn:
            rows = conn.execute(
                """SELECT g.id,
                     (SELECT count(*) FROM vk.posts p WHERE p.group_id = g.id AND NOT p.is_deleted),
                     (SELECT count(*) FROM vk.comments c WHERE c.group_id = g.id AND NOT c.is_deleted)
                   FROM vk.groups g WHERE g.id = ANY(%s)""",
                (group_ids,),
            ).fetchall()
        return {gid: (posts, comments) for gid, posts, comments in rows}

    def truth(self, group_ids: list[int]) -> dict[int, tuple[int, int]]:
        out = {}
        for gid in group_ids:
            posts = self.world.posts(gid)
            comments = [
                c for p in posts for c in self.world.comments(gid, p["id"]) if not c.get("deleted")
            ]
            out[gid] = (len(posts), len(comments))
        return out


@pytest.fixture(scope="module")
def deployment(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    logs = ARTIFACTS / "logs"
    logs.mkdir(parents=True)
    home = tmp_path_factory.mktemp("e2e")
    dagster_home = home / "dagster_home"
    dagster_home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    drops = home / "drops"
    drops.mkdir()
    data_url = create_database(pg_admin_url, "vke2e")
    dagster_url = create_database(pg_admin_url, "vke2edg")
    token = f"e2e-{uuid.uuid4().hex}"
    emulator_port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": data_url,
        "DAGSTER_POSTGRES_URL": sqlalchemy_postgres_url(dagster_url),
        "DAGSTER_HOME": str(dagster_home),
        "VK_PIPELINE_HOME": str(home),
        "VK_PIPELINE_DROP_DIR": str(drops),
        "VK_ACCESS_TOKEN": token,
        "VK_API_BASE_URL": f"http://127.0.0.1:{emulator_port}/method",
    }
    emulator_log = open(logs / "emulator.log", "ab")  # noqa: SIM115 (closed below)
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vk_pipeline.emulator",
            "--port",
            str(emulator_port),
            *EMULATOR_ARGS,
        ],
        env={**os.environ, "VK_EMULATOR_TOKENS": token},
        stdout=emulator_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack = Stack(env, port=free_port(), code_port=free_port(), log_dir=logs)
    saved_url = os.environ.get("DAGSTER_POSTGRES_URL")
    os.environ["DAGSTER_POSTGRES_URL"] = env["DAGSTER_POSTGRES_URL"]
    instance = None
    try:
        stack.start(timeout=300)
        instance = dg.DagsterInstance.from_config(str(dagster_home))
        yield Deployment(
            stack=stack,
            client=DagsterGraphQLClient("127.0.0.1", port_number=stack.port),
            instance=instance,
            world=World(WORLD),
            data_url=data_url,
            drops=drops,
            logs=logs,
        )
    finally:
        stack.stop()
        stop_process_group(emulator)
        emulator_log.close()
        if instance is not None:
            instance.dispose()
        if saved_url is None:
            os.environ.pop("DAGSTER_POSTGRES_URL", None)
        else:
            os.environ["DAGSTER_POSTGRES_URL"] = saved_url
        drop_database(pg_admin_url, data_url)
        drop_database(pg_admin_url, dagster_url)


@pytest.fixture(scope="module")
def launched_backfill(deployment: Deployment) -> tuple[str, list[int]]:
    """Two more groups registered through the webserver (as the UI's "add partition" box does)
    and backfilled through its GraphQL API. Launched first, so it runs beside the sensor's run."""
    d = deployment
    ids = d.world.group_ids()[3:5]
    for gid in ids:
        added = d.graphql(ADD_PARTITION, repo=REPO, name=GROUP_PARTITIONS_NAME, key=str(gid))[
            "addDynamicPartition"
        ]
        assert added["__typename"] == "AddDynamicPartitionSuccess", added
    launched = d.graphql(
        LAUNCH_BACKFILL,
        params={
            "partitionNames": [str(g) for g in ids],
            "assetSelection": [{"path": [k]} for k in ("groups", "posts", "comments")],
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"], ids


@pytest.fixture(scope="module")
def dropped_file_run(
    deployment: Deployment, launched_backfill: tuple[str, list[int]]
) -> tuple[str, list[int], float]:
    """A group list dropped into the folder as a user writes one; the run its sensor tick
    launched, finished. Returns (run id, the file's groups, when a copy of it was dropped)."""
    d = deployment
    ids = d.world.group_ids()[:3]
    lines = [
        "# cafés and memes, as exported from a spreadsheet",
        f"@{d.world.group(ids[0])['screen_name']}",
        f"https://vk.com/club{ids[1]}",
        str(ids[2]),
        "vk.com/id1",  # a person, not a community
        "https://example.com/not-vk",  # another site
    ]
    path = d.drops / "coffee_shops.txt"
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8-sig")
    old = time.time() - 120  # copied in a while ago: settled, the sensor reads it at once
    os.utime(path, (old, old))
    runs = wait_for(
        "the sensor's run",
        lambda: d.instance.get_runs(
            filters=dg.RunsFilter(tags={"vk_pipeline/group_file": path.name})
        ),
        timeout=240,
    )
    [run] = runs
    # The same content under another name, dropped while the run goes (checked later).
    copy = d.drops / "coffee_shops (1).txt"
    shutil.copyfile(path, copy)
    os.utime(copy, (old, old))
    copied_at = time.time()
    assert d.wait_for_run(run.run_id) == "SUCCESS"
    return run.run_id, ids, copied_at


def test_a_dropped_group_file_becomes_partitions_a_run_and_rows(deployment, dropped_file_run):
    d = deployment
    run_id, ids, _ = dropped_file_run
    run = d.instance.get_run_by_id(run_id)
    keys = [str(i) for i in ids]
    assert run.tags["dagster/asset_partition_range_start"] == keys[0]
    assert run.tags["dagster/asset_partition_range_end"] == keys[-1]
    assert run.tags["vk_pipeline/rejected_lines"] == "2"
    assert set(keys) <= set(d.instance.get_dynamic_partitions(GROUP_PARTITIONS_NAME))
    assert d.stored(ids) == d.truth(ids)
    assert all(posts > 0 for posts, _ in d.truth(ids).values())


def test_a_copy_of_the_file_under_another_name_launches_nothing(deployment, dropped_file_run):
    d = deployment
    run_id, _, copied_at = dropped_file_run
    wait_for(
        "a sensor tick after the copy",
        lambda: any(
            t["timestamp"] > copied_at and t["status"] in ("SKIPPED", "SUCCESS")
            for t in d.graphql(SENSOR_TICKS, selector={**REPO, "sensorName": "group_file_sensor"})[
                "sensorOrError"
            ]["sensorState"]["ticks"]
        ),
        timeout=180,
    )
    sha = d.instance.get_run_by_id(run_id).tags[SHA_TAG]
    assert len(d.instance.get_runs(filters=dg.RunsFilter(tags={SHA_TAG: sha}))) == 1
    copy = dg.RunsFilter(tags={"vk_pipeline/group_file": "coffee_shops (1).txt"})
    assert d.instance.get_runs(filters=copy) == []


def test_a_backfill_launched_through_the_graphql_api(deployment, launched_backfill):
    d = deployment
    backfill_id, ids = launched_backfill
    status = wait_for(
        "the backfill",
        lambda: (
            (s := d.graphql(BACKFILL_STATUS, id=backfill_id)["partitionBackfillOrError"]["status"])
            not in ("REQUESTED", "CANCELING", "FAILING")
            and s
        ),
        timeout=400,
    )
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), status
    runs = d.instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    # BackfillPolicy.multi_run(50): both groups in one ranged run.
    assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]
    assert d.stored(ids) == d.truth(ids)


def test_the_daily_schedule_tick_asks_to_refresh_every_registered_group(
    deployment, dropped_file_run
):
    d = deployment
    selector = {**REPO, "scheduleName": "daily_refresh"}
    tz = ZoneInfo("Europe/Moscow")
    now = datetime.now(tz)
    tick = now.replace(hour=3, minute=0, second=0, microsecond=0)
    if tick <= now:
        tick += timedelta(days=1)
    first = d.graphql(SCHEDULE_DRY_RUN, selector=selector, timestamp=tick.timestamp())
    again = d.graphql(SCHEDULE_DRY_RUN, selector=selector, timestamp=tick.timestamp())
    result = first["scheduleDryRun"]["evaluationResult"]
    assert result["error"] is None, result["error"]
    requests = result["runRequests"]
    registered = d.instance.get_dynamic_partitions(GROUP_PARTITIONS_NAME)
    assert len(requests) == 1  # ≤ 50 groups: one ranged run
    tags = {t["key"]: t["value"] for t in requests[0]["tags"]}
    assert tags["dagster/asset_partition_range_start"] == registered[0]
    assert tags["dagster/asset_partition_range_end"] == registered[-1]
    assert requests[0]["runKey"].startswith(f"refresh-{tick.date().isoformat()}")
    # Evaluated twice, the same tick asks for the same run keys: the daemon launches them once.
    assert [r["runKey"] for r in again["scheduleDryRun"]["evaluationResult"]["runRequests"]] == [
        r["runKey"] for r in requests
    ]
    assert set(registered) == {str(g) for g in d.world.group_ids()[:5]}


def test_the_sensor_and_schedule_are_running(deployment):
    d = deployment
    sensor = d.graphql(SENSOR_STATE, selector={**REPO, "sensorName": "group_file_sensor"})
    schedule = d.graphql(SCHEDULE_STATE, selector={**REPO, "scheduleName": "daily_refresh"})
    assert sensor["sensorOrError"]["sensorState"]["status"] == "RUNNING"
    assert schedule["scheduleOrError"]["scheduleState"]["status"] == "RUNNING"


def test_the_ui_in_chromium(deployment, dropped_file_run):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` (as root) installs Debian's chromium")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    d = deployment
    run_id, ids, _ = dropped_file_run
    shots = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            # The asset graph of the `vk` group: the three assets.
            page.goto(f"{d.stack.url}/locations/{LOCATION_NAME}/asset-groups/vk")
            skip = page.get_by_role("button", name="Skip")  # "Join the Dagster community"
            try:
                skip.wait_for(timeout=15_000)
                skip.click()
            except PlaywrightTimeout:
                pass  # shown once per browser profile; not this time
            for asset in ("groups", "posts", "comments"):
                page.get_by_text(asset, exact=True).first.wait_for()
            shots["asset-graph"] = _shot(page, "asset-graph")

            # Automation: the sensor and the schedule listed, each switched on.
            page.goto(f"{d.stack.url}/automation")
            names = ["daily_refresh", "group_file_sensor"]
            page.wait_for_function(
                f"(names) => Object.values(({SWITCHES_JS})(names)).every(v => v === true)",
                arg=names,
            )
            assert page.evaluate(SWITCHES_JS, names) == dict.fromkeys(names, True)
            assert "Scheduled At 03:00" in page.inner_text("body")
            shots["automation"] = _shot(page, "automation")

            # The sensor's finished run: its per-group progress lines (engine events hidden).
            page.goto(f"{d.stack.url}/runs/{run_id}")
            page.get_by_placeholder("Filter…").wait_for()
            levels = page.get_by_role("button", name=re.compile("Levels"))
            levels.click()
            page.get_by_text("event", exact=True).click()
            # The levels menu stays open on Escape; a second click closes it before the shot.
            levels.click()
            page.get_by_text("event", exact=True).wait_for(state="hidden")
            progress = page.get_by_text(re.compile(r"^group \d+: \d+ posts read$"))
            progress.nth(len(ids) - 1).wait_for()
            lines = sorted(progress.all_inner_texts())
            body = page.inner_text("body")
            assert "Success" in body
            assert re.search(r"Launched by\s+group_file_sensor", body), body[:500]
            shots["run"] = _shot(page, "run")
        finally:
            browser.close()
    truth = d.truth(ids)
    assert lines == sorted(f"group {gid}: {truth[gid][0]} posts read" for gid in ids)
    assert all(path.stat().st_size > 10_000 for path in shots.values())


def test_logs_stay_readable(deployment, dropped_file_run):
    code_log = (deployment.logs / "code.log").read_text(errors="replace")
    assert "Started Dagster code server" in code_log
    assert "BetaWarning" not in code_log and "PreviewWarning" not in code_log


def _shot(page: Any, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


# A row of the Automation page holds two checkboxes: the row's selection and the on/off switch.
SWITCHES_JS = """(names) => Object.fromEntries(names.map(n => {
  const label = [...document.querySelectorAll('body *')]
    .find(e => e.childElementCount === 0 && e.textContent.trim() === n);
  let row = label;
  while (row && row.querySelectorAll('input[type=checkbox]').length < 2) row = row.parentElement;
  const boxes = row ? row.querySelectorAll('input[type=checkbox]') : [];
  return [n, boxes.length === 2 ? boxes[1].checked : null];
}))"""

ADD_PARTITION = """
mutation($repo: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: $name, partitionKey: $key) {
    __typename
    ... on PythonError { message }
  }
}"""

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""

BACKFILL_STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { status }
  }
}"""

SCHEDULE_DRY_RUN = """
mutation($selector: ScheduleSelector!, $timestamp: Float) {
  scheduleDryRun(selectorData: $selector, timestamp: $timestamp) {
    __typename
    ... on DryRunInstigationTick {
      evaluationResult {
        runRequests { runKey runConfigYaml tags { key value } }
        skipReason
        error { message }
      }
    }
    ... on PythonError { message }
  }
}"""

SENSOR_STATE = """
query($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) { ... on Sensor { sensorState { status } } }
}"""

SENSOR_TICKS = """
query($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor { sensorState { ticks(limit: 20) { timestamp status } } }
  }
}"""

SCHEDULE_STATE = """
query($selector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $selector) { ... on Schedule { scheduleState { status } } }
}"""
