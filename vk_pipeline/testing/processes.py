"""The emulator and a crawl, each in a process of their own, for figures a shared process would
distort (arrival clocks, peak memory) and for tests that kill a crawl."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import httpx

from vk_pipeline.dev import free_port
from vk_pipeline.emulator import DEMO_TOKEN, World, WorldSpec
from vk_pipeline.local import PROJECT_ROOT
from vk_pipeline.testing.crawl import as_of

CRAWL_CHILD = [sys.executable, "-m", "vk_pipeline.testing.crawl_child"]


class EmulatorProcess:
    """The emulator in a process of its own (`python -m vk_pipeline.emulator`), so the clock it
    stamps arrivals with is not held up by a crawl's work in the benchmark's process."""

    def __init__(self, spec: WorldSpec, *, rate: float, tokens: list[str] | None = None) -> None:
        self.spec = spec
        self.port = free_port()
        args = [
            *(sys.executable, "-m", "vk_pipeline.emulator", "--port", str(self.port)),
            *("--seed", str(spec.seed), "--rate", str(rate), "--groups", str(spec.groups)),
            *("--posts", str(spec.posts), "--comments", str(spec.comments)),
            *(() if spec.special_groups else ("--no-special-groups",)),
            *("--now", str(spec.now)),
        ]
        env = {**os.environ, "VK_EMULATOR_TOKENS": ",".join(tokens or [DEMO_TOKEN])}
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "serving" in line:
                break
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/method"

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_emulator/stats", timeout=30).json()

    def reset_stats(self) -> None:
        httpx.post(f"{self.url}/_emulator/reset", json={}, timeout=30).raise_for_status()

    def advance(self, world: World, **changes: float) -> dict[str, Any]:
        """Move the served world and `world` (a copy of the same spec) alike; the summary."""
        response = httpx.post(f"{self.url}/_emulator/advance", json=changes, timeout=300)
        response.raise_for_status()
        summary = world.advance(**changes)
        assert summary["now"] == response.json()["now"]
        return summary

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def crawl_process(
    url: str,
    base_url: str,
    world: World,
    keys: list[str],
    *,
    rate: float = 3.0,
    tokens: list[str] | None = None,
    **popen: Any,
) -> subprocess.Popen[str]:
    """A ranged crawl in a process of its own (`vk_pipeline.testing.crawl_child`)."""
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen(
        [
            *CRAWL_CHILD,
            *(url, base_url, as_of(world), *keys, "--rate", str(rate)),
            *("--tokens", ",".join(tokens or [DEMO_TOKEN])),
        ],
        cwd=PROJECT_ROOT,
        text=True,
        **popen,
    )
