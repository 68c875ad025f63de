"""One setup found by every entry point: `make dev` writes `$VK_PIPELINE_HOME/setup.env`, and a
command in a clean environment reaches the same database, Dagster instance and emulator."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from vk_pipeline import local
from vk_pipeline.dev import free_port
from vk_pipeline.emulator import DEMO_TOKEN, World
from vk_pipeline_tests.cli.conftest import cli

ROOT = Path(__file__).resolve().parents[2]


def setup_with(**created: str) -> local.LocalSetup:
    return local.LocalSetup("", "", None, created)


# -- the file ---------------------------------------------------------------------------------


def test_the_file_is_private_and_holds_no_secret_of_the_users(tmp_path):
    path = local.write_setup_file(
        setup_with(
            DATABASE_URL="postgresql://postgres:@/vk_pipeline?host=/x/pgdata",
            DAGSTER_POSTGRES_URL="postgresql+psycopg2://u:hunter2@db/dagster",
            VK_API_BASE_URL="http://127.0.0.1:8765/method",
            VK_ACCESS_TOKEN=DEMO_TOKEN,
        ),
        "make dev",
    )
    assert path == tmp_path / "vk_home" / "setup.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "hunter2" not in text and "DAGSTER_POSTGRES_URL" not in text
    read = local.SetupFile.read()
    assert read is not None and read.values == {
        "DATABASE_URL": "postgresql://postgres:@/vk_pipeline?host=/x/pgdata",
        "VK_API_BASE_URL": "http://127.0.0.1:8765/method",
        "VK_ACCESS_TOKEN": DEMO_TOKEN,
    }


def test_the_environment_wins_group_by_group(monkeypatch):
    local.write_setup_file(
        setup_with(
            DATABASE_URL="postgresql://postgres@/vk_pipeline?host=/x",
            VK_API_BASE_URL="http://127.0.0.1:8765/method",
            VK_ACCESS_TOKEN=DEMO_TOKEN,
        ),
        "make dev",
    )
    read = local.SetupFile.read()
    assert read is not None
    # A real token in the environment is never sent to the emulator the file names.
    applied = read.applicable({"VK_ACCESS_TOKENS": "real1,real2"})
    assert applied == {"DATABASE_URL": "postgresql://postgres@/vk_pipeline?host=/x"}
    assert "DATABASE_URL" not in read.applicable({"DATABASE_URL": "postgresql://me@db/x"})


def test_a_tampered_file_sets_nothing(tmp_path):
    path = tmp_path / "vk_home" / "setup.env"
    path.parent.mkdir()
    path.write_text("DATABASE_URL=postgresql://x@/y\nLD_PRELOAD=/tmp/evil.so\n")
    ran = cli("groups", "list")
    assert ran.code == 2
    assert ran.err == f"error: {path}:2: not a setting this file may hold\n"


def test_a_file_whose_setup_stopped_says_so_in_one_line(tmp_path):
    local.write_setup_file(
        setup_with(
            DATABASE_URL=f"postgresql://postgres:@/vk_pipeline?host={tmp_path}/gone",
            DAGSTER_HOME=str(tmp_path / "dagster_home"),
            DAGSTER_POSTGRES_URL=f"postgresql+psycopg2://postgres:@/dagster?host={tmp_path}/gone",
            VK_API_BASE_URL=f"http://127.0.0.1:{free_port()}/method",
            VK_ACCESS_TOKEN=DEMO_TOKEN,
        ),
        "make dev",
    )
    path = local.setup_path()
    for argv in (["groups", "list"], ["search", "кофе"]):
        ran = cli(*argv)
        assert ran.code == 3 and ran.out == ""
        [line] = ran.err.splitlines()
        assert line.startswith(f"error: {path}: the local setup it records is not running (")
        assert "does not answer" in line and "start it with `make dev`" in line
    ran = cli("groups", "check", str(path))  # needs VK: the emulator is named
    assert "the VK emulator at http://127.0.0.1:" in ran.err


def test_make_dev_takes_its_ports_from_make_variables():
    done = subprocess.run(
        ["make", "-n", "dev", "PORT=3107", "EMULATOR_PORT=8799"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    [line] = [ln for ln in done.stdout.splitlines() if "vk_pipeline.dev" in ln]
    assert line.split()[-4:] == ["--port", "3107", "--emulator-port", "8799"]


# -- make dev, then a command in a clean environment ------------------------------------------


def clean_env(home: Path) -> dict[str, str]:
    """A new terminal: nothing of the project's settings, only where its home is."""
    kept = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    return {**kept, "VK_PIPELINE_HOME": str(home)}


def vk_pipeline(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vk_pipeline", *argv],
        cwd=ROOT,
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_command_in_a_clean_environment_finds_make_dev(tmp_path, database_url, dagster_database):
    home = tmp_path / "home"
    port, emulator_port = free_port(), free_port()
    env = {
        **os.environ,
        "VK_PIPELINE_HOME": str(home),
        "DATABASE_URL": database_url,
        "DAGSTER_POSTGRES_URL": dagster_database,
    }
    for name in ("DAGSTER_HOME", "VK_ACCESS_TOKEN", "VK_ACCESS_TOKENS", "VK_API_BASE_URL"):
        env.pop(name, None)
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*(sys.executable, "-m", "vk_pipeline.dev"), "--port", str(port),
             "--emulator-port", str(emulator_port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        # make dev writes the file once the emulator runs and its groups are partitions.
        deadline = time.monotonic() + 180
        while not (home / "setup.env").exists():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no setup.env within 180 s"
            time.sleep(0.5)
        listed = vk_pipeline(home, "groups", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        rows = [json.loads(line) for line in listed.stdout.splitlines()]
        world_ids = World(local.demo_world()).group_ids()
        assert [r["id"] for r in rows] == world_ids and all(r["tracked"] for r in rows)

        checked = vk_pipeline(home, "groups", "check", "--json", str(write_list(tmp_path)))
        assert checked.returncode == 0, checked.stderr  # the emulator, found through the file
        assert json.loads(checked.stdout)["groups"] == [world_ids[0]]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # make dev has stopped: the file says where it was, and the command says it is gone.
    stale = vk_pipeline(home, "groups", "check", str(write_list(tmp_path)))
    assert stale.returncode == 3 and stale.stdout == ""
    assert stale.stderr == (
        f"error: {home / 'setup.env'}: the local setup it records is not running (the VK "
        f"emulator at http://127.0.0.1:{emulator_port} does not answer): start it with `make "
        "dev`, or set DATABASE_URL, DAGSTER_HOME and VK_API_BASE_URL / VK_ACCESS_TOKEN yourself\n"
    )
    printed = log.read_text()
    assert f"{home / 'setup.env'}" in printed and "-m vk_pipeline groups list" in printed


def write_list(tmp_path: Path) -> Path:
    path = tmp_path / "one.txt"
    path.write_text(f"club{World(local.demo_world()).group_ids()[0]}\n")
    return path
