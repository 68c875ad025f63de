"""`make dev`: the Dagster UI and daemon on the demo's setup, emulator and Postgres kept alive.

`dagster dev` ignores SIGTERM when headless and orphans its children, so the webserver and the daemon
are started here directly and stopped by pid.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import dagster as dg

from vk_pipeline import local
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--emulator-port", type=int, default=8765)
    args = parser.parse_args(argv)
    setup = local.start(emulator_port=args.emulator_port)
    if setup.world is not None:
        keys = [str(g) for g in setup.world.group_ids()]
        dg.DagsterInstance.get().add_dynamic_partitions(GROUP_PARTITIONS_NAME, keys)
        print(f"VK emulator at {setup.emulator.base_url}; {len(keys)} groups registered")
    workspace = str(local.PROJECT_ROOT / "workspace.yaml")
    bin_dir = os.path.dirname(sys.executable)
    procs = [
        subprocess.Popen(
            [
                f"{bin_dir}/dagster-webserver",
                "-w",
                workspace,
                "-h",
                args.host,
                "-p",
                str(args.port),
            ],
            cwd=local.PROJECT_ROOT,
        ),
        subprocess.Popen(
            [f"{bin_dir}/dagster-daemon", "run", "-w", workspace], cwd=local.PROJECT_ROOT
        ),
    ]
    print(f"Dagster UI: http://{args.host}:{args.port}  (Ctrl-C stops everything)")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        setup.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
