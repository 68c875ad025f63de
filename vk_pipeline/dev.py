"""`make dev`: the Dagster UI and daemon on the demo's setup, emulator and Postgres kept alive.

The same three processes as the compose stack: a code server (`dagster code-server start`, which
reloads the code when asked from the UI), `dagster-webserver` and `dagster-daemon`, the last two
reaching the code server over gRPC through deploy/workspace.yaml. Each runs in its own process
group and is stopped with its children (run workers included): `dagster dev` ignores SIGTERM when
headless and orphans its children, so it is not used.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import dagster as dg
import httpx

from vk_pipeline import local
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME

CODE_MODULE = "vk_pipeline.definitions"
LOCATION_NAME = "vk_pipeline"
# The gRPC workspace: host and port come from DAGSTER_CODE_SERVER_HOST / _PORT, the variables
# `dagster code-server start` itself reads, so one pair configures both ends.
WORKSPACE = local.PROJECT_ROOT / "deploy" / "workspace.yaml"
UNFINISHED = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def commands(workspace: str, host: str, port: int) -> dict[str, list[str]]:
    """The long-running processes, as `make dev`, the end-to-end test and docker-compose.yml run
    them (a test compares the compose file with this)."""
    return {
        "code": [
            "dagster",
            "code-server",
            "start",
            "-m",
            CODE_MODULE,
            "--location-name",
            LOCATION_NAME,
        ],
        "webserver": ["dagster-webserver", "-h", host, "-p", str(port), "-w", workspace],
        "daemon": ["dagster-daemon", "run", "-w", workspace],
    }


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    """Code server, webserver and daemon as process groups of their own."""

    env: dict[str, str]
    host: str = "127.0.0.1"
    port: int = 3000
    code_port: int = 4000
    log_dir: Path | None = None  # each process's output to <name>.log; None: this terminal
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 180) -> None:
        """Start the code server, wait for its port, then the webserver and the daemon."""
        env = {
            **self.env,
            "DAGSTER_CODE_SERVER_HOST": self.host,
            "DAGSTER_CODE_SERVER_PORT": str(self.code_port),
        }
        bin_dir = Path(sys.executable).parent
        deadline = time.monotonic() + timeout
        for name, argv in commands(str(WORKSPACE), self.host, self.port).items():
            out: IO[bytes] | None = None
            if self.log_dir is not None:
                out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (closed in stop)
                self._logs.append(out)
            self.procs[name] = subprocess.Popen(
                [str(bin_dir / argv[0]), *argv[1:]],
                cwd=local.PROJECT_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                start_new_session=True,  # its own process group: stop() ends its children too
            )
            if name == "code":
                self._wait(lambda: _accepts(self.host, self.code_port), deadline, "code server")
        self._wait(self.webserver_up, deadline, "webserver")

    def webserver_up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/server_info", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, ready: Callable[[], bool], deadline: float, what: str) -> None:
        while not ready():
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited while waiting for the {what}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {what} did not come up")
            time.sleep(0.5)

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs.values())

    def stop(self, timeout: float = 30) -> None:
        """Stop each process group, the daemon first so nothing new launches."""
        for name in ("daemon", "webserver", "code"):
            if (proc := self.procs.get(name)) is not None:
                stop_process_group(proc, timeout)
        for log in self._logs:
            log.close()


def _accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM the process group `proc` leads (started with start_new_session=True), SIGKILL
    what is left of it after `timeout`; returns once the group is empty."""
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        proc.poll()  # reap the leader so it does not linger as a zombie
        time.sleep(0.2)
    if _group_alive(proc.pid):
        _signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def fail_leftover_runs(instance: dg.DagsterInstance) -> int:
    """Fail runs still marked as running from an earlier session: their workers died with it.
    The local launcher cannot be asked about a worker it did not start, so without this they
    would hold run and pool slots forever; failing them lets run retries relaunch them."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED))
    for run in runs:
        instance.report_run_failed(run, "make dev restarted: this run's worker is gone")
    return len(runs)


def taken_ports(host: str, ports: dict[str, int]) -> list[str]:
    """The ports of `ports` something already listens on (a `make dev` in another terminal)."""
    return [f"{what} port {port}" for what, port in ports.items() if port and _accepts(host, port)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000, help="the UI's (make dev PORT=...)")
    parser.add_argument("--code-port", type=int, default=0, help="default: a free port")
    parser.add_argument(
        "--emulator-port", type=int, default=8765, help="the VK emulator's (EMULATOR_PORT=...)"
    )
    args = parser.parse_args(argv)
    ports = {
        "the UI": args.port,
        "the emulator": args.emulator_port,
        "the code server": args.code_port,
    }
    if taken := taken_ports(args.host, ports):
        print(
            f"make dev: error: {' and '.join(taken)} on {args.host} already in use (another "
            "`make dev`?): stop it, or choose others: make dev PORT=3001 EMULATOR_PORT=8766",
            file=sys.stderr,
        )
        return 2
    try:
        setup = local.start(emulator_port=args.emulator_port)
    except (local.SettingError, OSError) as exc:
        print(f"make dev: error: {exc}", file=sys.stderr)
        return 2
    stack = Stack(dict(os.environ), args.host, args.port, args.code_port or free_port(args.host))
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        instance = dg.DagsterInstance.get()
        if failed := fail_leftover_runs(instance):
            print(f"{failed} run(s) left running by an earlier session marked failed")
        if setup.world is not None:
            keys = [str(g) for g in setup.world.group_ids()]
            instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, keys)
            print(f"VK emulator at {setup.emulator.base_url}; {len(keys)} groups registered")
        print("Dagster runs, event logs and schedules: PostgreSQL database 'dagster'")
        if (drops := local.drop_dir()) is not None:
            print(f"drop group-list files into {drops}")
        written = local.write_setup_file(setup, "make dev")
        stack.start()
        print(f"Dagster UI: {stack.url}  (Ctrl-C stops everything)")
        print(
            f"From another terminal (the setup is found through {written}):\n"
            f"  {local.command_line('groups list')}",
            flush=True,
        )
        while not stopping and stack.alive():
            time.sleep(0.5)
    finally:
        stack.stop()
        setup.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
