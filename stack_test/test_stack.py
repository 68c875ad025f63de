"""The compose stack built and booted on a real Docker engine: `make stack-test` (root, ~4 min).

Builds the project's image through `docker compose build` (on stand-in base images where the
registry's cannot be pulled), starts postgres, code server, webserver and daemon with the VK
emulator beside them, drops a group-list file into the drop folder, and waits for the run that the
sensor asks for and the `DockerRunLauncher` starts as a container of its own. Then it checks the
rows in the stack's Postgres against the emulator's world, that the webserver answers, and that
neither the database password nor the VK token shows up in any log or in Dagster's event storage.
Afterwards nothing is left: no container, network, volume or image of the test, and, when the test
started the engine itself, no engine process, iptables rule, sysctl or file of it either.

Printed (pytest -s): each phase's time, the run container's id and status, the rows stored, and the
`ps` / `docker ps -a` / `iptables -S` evidence after the teardown.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import psycopg

from stack_test import images
from stack_test.engine import (
    DOCKER,
    Engine,
    HostState,
    StackTestError,
    engine_processes,
    inspect,
    require_tools,
    run,
    wait_for,
)
from stack_test.stack import FINISHED, NETWORK, Stack, truth, world_groups

CA_DIR = Path("/usr/local/share/ca-certificates")
TIMES: dict[str, float] = {}


def say(text: str) -> None:
    print(f"stack-test: {text}", flush=True)


@contextmanager
def phase(name: str) -> Iterator[None]:
    start = time.monotonic()
    say(f"{name} …")
    yield
    TIMES[name] = time.monotonic() - start
    say(f"{name}: {TIMES[name]:.1f} s")


def build_images(engine: Engine, stack: Stack, work: Path) -> None:
    with phase("base image (mmdebstrap → docker import)"):
        images.import_base(engine, work / "mmdebstrap.log")
    with phase("images (python and postgres stand-ins, project image via compose build)"):
        # PostgreSQL's stand-in builds while the project image waits for Python's and builds.
        pg_log, py_log = work / "postgres-image.log", work / "python-image.log"
        pg = images.start_build(engine, "postgres", images.POSTGRES_TAG, pg_log)
        py = images.start_build(engine, "python", images.PYTHON_TAG, py_log)
        images.finish_build(py, "the python stand-in", py_log)
        # This machine's CAs for the build's downloads; none where there are none.
        ca = "".join(p.read_text() for p in sorted(CA_DIR.glob("*.crt")))
        build_env = {"PYTHON_IMAGE": images.PYTHON_TAG, **({"CA_CERTIFICATES": ca} if ca else {})}
        start = time.monotonic()
        stack.compose("build", "code", env=build_env)
        TIMES["project image build"] = time.monotonic() - start
        say(f"project image {images.PROJECT_TAG}: {TIMES['project image build']:.1f} s")
        images.finish_build(pg, "the postgres stand-in", pg_log)


def exercise(stack: Stack) -> None:
    group_ids, text = world_groups()
    # Dropped as the stack starts: the sensor's first tick, when the daemon comes up, reads it
    # (a file dropped later waits for the next tick, 30 s on).
    stack.drop("stack-test.txt", text)
    with phase("boot (compose up --wait)"):
        stack.compose("up", "--detach", "--no-build", "--wait", "--wait-timeout", "300")
        info = wait_for("the webserver's /server_info", stack.server_info, 120, every=1)
    say(f"webserver on 127.0.0.1:{stack.webserver_port} answers: {info}")
    services = stack.compose("ps", "--all", "--format", "{{.Service}} {{.State}} {{.Status}}")
    for line in sorted(services.stdout.splitlines()):
        say(f"  service {line}")

    with phase("sensor → run → DockerRunLauncher container exited"):

        def finished_runs() -> list[dict] | None:
            runs = stack.runs()
            return runs if runs and all(r["status"] in FINISHED for r in runs) else None

        runs = wait_for("a finished run for the dropped file", finished_runs, 480, every=3)

        def exited(cid: str) -> dict | None:
            [c] = inspect(stack.engine, cid)
            return c if c["State"]["Status"] == "exited" else None

        containers = {}
        for r in runs:
            cid = next((t["value"] for t in r["tags"] if t["key"] == "docker/container_id"), None)
            if cid is None:
                raise StackTestError(
                    f"run {r['runId']} has no container: not the DockerRunLauncher"
                )
            # The run is reported finished just before its worker process ends.
            containers[r["runId"]] = wait_for(
                f"run container {cid[:12]} to exit", partial(exited, cid), 120, every=1
            )
    for r in runs:
        tags = {t["key"]: t["value"] for t in r["tags"]}
        c = containers[r["runId"]]
        state = c["State"]
        partitions = " ".join(f"{k}={v}" for k, v in tags.items() if "partition" in k)
        say(
            f"run {r['runId']} ({r['jobName']}, {partitions}): {r['status']} in "
            f"{r['endTime'] - r['startTime']:.1f} s"
        )
        say(
            f"  container {c['Id'][:12]} {c['Name'].lstrip('/')} image {c['Config']['Image']} "
            f"networks {sorted(c['NetworkSettings']['Networks'])}: {state['Status']}, "
            f"exit code {state['ExitCode']}"
        )
        assert r["status"] == "SUCCESS", (r, stack.logs()[-6000:])
        assert (state["Status"], state["ExitCode"]) == ("exited", 0), state
        assert NETWORK in c["NetworkSettings"]["Networks"]

    with psycopg.connect(stack.database_url("vk_pipeline")) as conn:
        stored = {
            gid: (posts, comments)
            for gid, posts, comments in conn.execute(
                """SELECT g.id,
                     (SELECT count(*) FROM vk.posts p WHERE p.group_id = g.id AND NOT p.is_deleted),
                     (SELECT count(*) FROM vk.comments c
                       WHERE c.group_id = g.id AND NOT c.is_deleted)
                   FROM vk.groups g ORDER BY g.id"""
            ).fetchall()
        }
    for gid, (posts, comments) in stored.items():
        say(f"rows stored: group {gid}: {posts} posts, {comments} comments")
    assert stored == truth(group_ids), (stored, truth(group_ids))

    # Secrets reach containers through the environment only, never logs or Dagster's storage.
    with psycopg.connect(stack.database_url("dagster")) as conn:
        events = "\n".join(
            row[0] for row in conn.execute("SELECT event FROM event_logs").fetchall()
        ) + "\n".join(row[0] for row in conn.execute("SELECT run_body FROM runs").fetchall())
    logs = stack.logs()
    for name, secret in (("database password", stack.password), ("VK token", stack.token)):
        assert secret not in logs, f"the {name} is in a container's log"
        assert secret not in events, f"the {name} is in Dagster's event storage"
    say(f"secrets: neither in {len(logs)} characters of logs nor in {len(events)} of events")


def teardown(engine: Engine, stack: Stack | None, inventory_before: dict[str, set[str]]) -> None:
    with phase("teardown (run containers, compose down -v, images)"):
        try:
            if stack is not None:
                stack.down()
        finally:
            images.remove_images(engine)
    left = {k: sorted(v - inventory_before[k]) for k, v in engine.inventory().items()}
    say("docker ps -a (before the engine stops):")
    print(engine.docker("ps", "-a").stdout, flush=True)
    assert not any(left.values()), f"left on the engine: {left}"


def evidence(socket: Path | None) -> None:
    say("ps (Docker engine processes):")
    print("\n".join(engine_processes()) or "(none)", flush=True)
    if socket is not None:
        say("docker ps -a (the test's engine is gone):")
        out = run([DOCKER, "--host", f"unix://{socket}", "ps", "-a"], check=False)
        print(f"exit {out.returncode}: {(out.stdout + out.stderr).strip()}", flush=True)
    for table in ("filter", "nat"):
        say(f"iptables -t {table} -S:")
        print(run(["iptables", "-t", table, "-S"], check=False).stdout, end="", flush=True)
    say(f"ip_forward: {Path('/proc/sys/net/ipv4/ip_forward').read_text().strip()}")


def test_the_image_builds_and_the_stack_boots_and_crawls_a_dropped_file() -> None:
    require_tools()
    total = time.monotonic()
    before = HostState.capture()
    work = Path(tempfile.mkdtemp(prefix="vk-stack-test-"))
    own_socket: Path | None = None  # the socket of the engine the test started, if it did
    try:
        start = time.monotonic()
        with Engine.running(work) as engine:
            own_socket = engine.socket if engine.ours else None
            TIMES["engine start"] = time.monotonic() - start
            which = "its own dockerd" if engine.ours else "the engine already running at"
            say(f"engine: {which} {engine.socket}, ready in {TIMES['engine start']:.1f} s")
            inventory_before = engine.inventory()
            if NETWORK in inventory_before["networks"]:
                raise StackTestError(
                    f"the engine already has a network {NETWORK!r} (a compose stack of this "
                    "project?): stop it first, the stack test needs that name"
                )
            stack: Stack | None = None
            failed = True
            try:
                stack = Stack.create(
                    engine, work / "stack", images.PROJECT_TAG, images.POSTGRES_TAG
                )
                build_images(engine, stack, work)
                exercise(stack)
                failed = False
            finally:
                if failed and stack is not None:
                    say("failed; the stack's logs (tail):")
                    print(stack.logs()[-8000:], flush=True)
                try:
                    teardown(engine, stack, inventory_before)
                except Exception as e:
                    if not failed:
                        raise
                    say(f"teardown after the failure failed too: {e}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        after = HostState.capture()
        evidence(own_socket)
        say(f"total {time.monotonic() - total:.1f} s")
        for name, seconds in TIMES.items():
            say(f"  {name}: {seconds:.1f} s")
    assert not work.exists(), f"{work} could not be removed (a mount left behind?)"
    assert not before.differences(after), before.differences(after)
