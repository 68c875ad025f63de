"""`make dev` end to end: webserver and daemon come up, a queued run of a group range succeeds
through the daemon in its own process, and everything stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from dagster_graphql import DagsterGraphQLClient

from vk_pipeline.emulator import World
from vk_pipeline.local import DEMO_WORLD

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dev_server(tmp_path: Path, database_url: str):
    port, emulator_port = free_port(), free_port()
    env = {
        **os.environ,
        "VK_PIPELINE_HOME": str(tmp_path),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "DATABASE_URL": database_url,
    }
    env.pop("VK_ACCESS_TOKEN", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vk_pipeline.dev",
            "--port",
            str(port),
            "--emulator-port",
            str(emulator_port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "make dev exited early"
            time.sleep(1)
        else:
            pytest.fail("webserver did not come up in 120 s")
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                raise


def test_a_queued_range_run_succeeds_through_the_daemon(dev_server, database_url):
    port, proc = dev_server
    keys = [str(g) for g in World(DEMO_WORLD).group_ids()][:3]
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution(
        "crawl_groups",
        tags={
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
        },
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS"
    with psycopg.connect(database_url) as conn:
        groups = conn.execute("SELECT count(*) FROM vk.groups").fetchone()[0]
        posts = conn.execute("SELECT count(*) FROM vk.posts").fetchone()[0]
    assert groups == 3 and posts > 0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
