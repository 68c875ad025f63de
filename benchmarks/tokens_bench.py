"""Token figures (issue 16), each section from one run of this script, on the demo world
(`vk_pipeline.local.DEMO_WORLD`: 4 groups of every kind) served by the emulator over HTTP, which
enforces VK's token kinds, VK ID expiry and refresh-token rotation; real Postgres:

* service: a full load with a service token only (process 1), then a refresh (process 2): equal
  to the truth, HTTP requests against the same load with a user token, error-28 answers per
  process;
* community: a user + community pool (two processes): error-27 answers per process; a
  community-only pool: the message;
* vkid: VK ID with 10-second access tokens, a full load then a refresh in a second process: both
  equal to the truth, refreshes, refused refreshes, error-5 answers per refresh; every token
  string (static, seed, minted) searched in stdout/stderr, Dagster's storage and compute logs
  and the data tables;
* cli: `python -m vk_pipeline tokens --probe` for a mixed pool.

Rates are raised on both sides (the figures are counts, not times); the VK ID section keeps the
user rate low so its load outlives several access tokens.

    .venv/bin/python benchmarks/tokens_bench.py [--database-url URL] [--only service,vkid,...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg

from vk_pipeline.emulator import EmulatorServer, World
from vk_pipeline.local import DEMO_WORLD
from vk_pipeline.resources import build_resources, vk_client
from vk_pipeline.testing.crawl import as_of, crawl, metadata
from vk_pipeline.testing.databases import scratch_database
from vk_pipeline.testing.processes import crawl_process
from vk_pipeline.testing.truth import matches_truth
from vk_pipeline.vk import fingerprint

USER_T = "bench-user-token-0123456789"
CLUB_T = "bench-community-token-0123456789"
SERVICE_T = "bench-service-token-0123456789"
SEED, CLIENT, DEVICE = "vk2.a.bench-seed-refresh-token", "51999999", "bench-device"
SECRET_KEY = "bench-secret-key-0123456789abcdef"
FAST = 50.0
VK_ID_ENV = ("VK_ID_REFRESH_TOKEN", "VK_ID_CLIENT_ID", "VK_ID_DEVICE_ID", "VK_ID_URL")


def row(figure: str, value: Any, goal: str = "") -> None:
    print(f"| {figure} | {value} | {goal} |", flush=True)


def server(world: World, **kwargs: Any) -> EmulatorServer:
    kwargs.setdefault("rate", FAST)
    return EmulatorServer(
        world,
        group_rate=FAST,
        service_rate=FAST,
        group_tokens=[CLUB_T],
        service_tokens=[SERVICE_T],
        **{"tokens": [USER_T], **kwargs},
    ).start()


def keys(world: World) -> list[str]:
    return [str(g) for g in world.group_ids()]


def errors(srv: EmulatorServer, code: int) -> int:
    return int(srv.stats()["errors"].get(str(code), 0))


def in_process(url: str, srv: EmulatorServer, world: World, tokens: str, home: str) -> Any:
    """A crawl through Dagster in this process, its instance kept in `home`."""
    resources = build_resources(
        database_url=url,
        tokens=tokens,
        vk_api_base_url=srv.base_url,
        requests_per_second=srv.rate,
        rate_margin_seconds=0.05,
    )
    with dg.instance_for_test(temp_dir=home) as instance:
        result, seconds = crawl(instance, resources, keys(world), {"as_of": as_of(world)})
    return result, seconds


def child(url: str, srv: EmulatorServer, world: World, tokens: list[str]) -> tuple[bool, str]:
    proc = crawl_process(url, srv.base_url, world, keys(world), rate=srv.rate, tokens=tokens,
                         stderr=subprocess.STDOUT)  # fmt: skip
    out, _ = proc.communicate(timeout=1800)
    return proc.returncode == 0, out


def failure(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            return event.step_failure_data.error.message.strip().splitlines()[0]
    return "(no failure)"


@contextmanager
def captured_fds(path: Path) -> Iterator[None]:
    """stdout and stderr of this process (and what Dagster writes there) into `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("wb") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)


def service_section(admin: str | None, world: World) -> None:
    srv = server(world)
    try:
        with scratch_database(admin, "vk_tok") as url, tempfile.TemporaryDirectory() as home:
            result, _ = in_process(url, srv, world, SERVICE_T, home)
            meta = metadata(result)
            requests = srv.stats()["http_requests"]
            row("service only, process 1: equal to the truth", result.success
                and matches_truth(world, url))  # fmt: skip
            row("service only, process 1: HTTP requests", requests)
            row("service only, process 1: error-28 answers", errors(srv, 28), "≤ 1")
            row("service only: routing note in the posts run's metadata",
                repr(meta.get("posts", {}).get("vk_routing", "")[:120] + "…"))  # fmt: skip
            srv.reset_stats()
            ok, _ = child(url, srv, world, [SERVICE_T])
            row("service only, process 2 (refresh): equal to the truth", ok
                and matches_truth(world, url))  # fmt: skip
            row("service only, process 2: error-28 answers", errors(srv, 28), "≤ 1")
        srv.reset_stats()
        with scratch_database(admin, "vk_tok") as url, tempfile.TemporaryDirectory() as home:
            result, _ = in_process(url, srv, world, USER_T, home)
            user_requests = srv.stats()["http_requests"]
            row("user token, same load: equal to the truth", result.success
                and matches_truth(world, url))  # fmt: skip
            row("user token, same load: HTTP requests", user_requests)
            row("service-only requests / user-token requests", f"{requests / user_requests:.1f}×")
    finally:
        srv.stop()


def community_section(admin: str | None, world: World) -> None:
    srv = server(world)
    try:
        with scratch_database(admin, "vk_tok") as url, tempfile.TemporaryDirectory() as home:
            result, _ = in_process(url, srv, world, f"{USER_T},{CLUB_T}", home)
            row("user + community, process 1: equal to the truth", result.success
                and matches_truth(world, url))  # fmt: skip
            row("user + community, process 1: error-27 answers", errors(srv, 27), "≤ 1")
            srv.reset_stats()
            ok, _ = child(url, srv, world, [USER_T, CLUB_T])
            row("user + community, process 2: equal to the truth", ok
                and matches_truth(world, url))  # fmt: skip
            row("user + community, process 2: error-27 answers", errors(srv, 27), "≤ 1")
        srv.reset_stats()
        with scratch_database(admin, "vk_tok") as url, tempfile.TemporaryDirectory() as home:
            result, _ = in_process(url, srv, world, CLUB_T, home)
            row("community only: run failed", not result.success)
            row("community only: the message", f"`{failure(result)}`")
            execute = srv.stats()["by_token"][fingerprint(CLUB_T)]["by_method"].get("execute", {})
            row("community only: error-27 (inner calls) / execute requests that carried them",
                f"{errors(srv, 27)} / {execute.get('http_requests', 0)}")  # fmt: skip
    finally:
        srv.stop()


def table_text(url: str) -> str:
    """Every row of every table of the data schema, as text."""
    out = []
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'vk'"
        ).fetchall()
        for (table,) in tables:
            for (text,) in conn.execute(f'SELECT t::text FROM vk."{table}" t'):
                out.append(text)
    return "\n".join(out)


def tree_text(root: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file()
    )


def vkid_section(admin: str | None, world: World) -> None:
    srv = server(world, rate=1, vkid_clients={CLIENT: SEED}, vkid_access_ttl=10)
    env = {
        "VK_ID_REFRESH_TOKEN": SEED,
        "VK_ID_CLIENT_ID": CLIENT,
        "VK_ID_DEVICE_ID": DEVICE,
        "VK_ID_URL": srv.url,
        "VK_PIPELINE_SECRET_KEY": SECRET_KEY,
    }
    os.environ.update(env)
    try:
        with scratch_database(admin, "vk_tok") as url, tempfile.TemporaryDirectory() as home:
            log = Path(home) / "stdout.txt"
            with captured_fds(log):
                result, seconds = in_process(url, srv, world, "", home)
            first = srv.stats()
            row("VK ID, 10 s tokens, full load (process 1): equal to the truth", result.success
                and matches_truth(world, url))  # fmt: skip
            row("VK ID, process 1: seconds / access tokens it outlived", f"{seconds:.0f} s / "
                f"{first['vkid']['refreshes']} refreshes")  # fmt: skip
            row("VK ID, process 1: error-5 answers", errors(srv, 5), "≤ refreshes")
            srv.reset_stats()
            ok, out = child(url, srv, world, [""])
            log.write_text(log.read_text(errors="replace") + out)
            second = srv.stats()
            row("VK ID, refresh in process 2: equal to the truth", ok
                and matches_truth(world, url))  # fmt: skip
            row("VK ID, process 2: refreshes / refused refreshes",
                f"{second['vkid']['refreshes']} / {second['vkid']['refused']}", "refused 0")  # fmt: skip
            row("VK ID, process 2: error-5 answers", errors(srv, 5), "≤ refreshes")
            row("VK ID, both: refused refreshes",
                first["vkid"]["refused"] + second["vkid"]["refused"], "0")  # fmt: skip
            # Every token string the run could have leaked: static ones, the seed, and every
            # access and refresh token VK ID minted (the emulator holds them in memory).
            secrets = [USER_T, CLUB_T, SERVICE_T, SEED, SECRET_KEY]
            secrets += [st for st in srv._registry._tokens if st.startswith("vk2.a.")]
            secrets += [c.live_refresh for c in srv.vkid._clients.values() if c.live_refresh]
            places = {
                "stdout/stderr": log.read_text(errors="replace"),
                "Dagster storage + compute logs": tree_text(Path(home)),
                "data tables": table_text(url),
            }
            for place, text in places.items():
                found = sum(text.count(s) for s in secrets)
                row(f"token strings found in {place} ({len(secrets)} tokens searched)", found, "0")
                # A positive control: the place searched holds what the runs wrote there.
                # (Fernet ciphertexts start "gAAAAA": the stored VK ID tokens, encrypted.)
                control = {"stdout/stderr": "peak_rss_mb", "data tables": "gAAAAA"}.get(
                    place, "vk_token_kinds"
                )
                row(f"  control: {control!r} found in {place} ({len(text):,} chars)",
                    text.count(control))  # fmt: skip
    finally:
        for name in [*VK_ID_ENV, "VK_PIPELINE_SECRET_KEY"]:
            os.environ.pop(name, None)
        srv.stop()


def cli_section(admin: str | None, world: World) -> None:
    # The user token's wall.get quota runs out mid-crawl (error 29), the VK ID credential serves
    # beside it; afterwards VK asks a captcha of the service token: every column has something.
    srv = server(
        world,
        vkid_clients={CLIENT: SEED},
        vkid_access_ttl=3600,
        token_quotas={USER_T: {"wall.get": 3}},
    )
    pool = f"{USER_T},{CLUB_T},{SERVICE_T}"
    try:
        with scratch_database(admin, "vk_tok") as url, tempfile.TemporaryDirectory() as home:
            env = {
                "DATABASE_URL": url,
                "VK_API_BASE_URL": srv.base_url,
                "VK_ACCESS_TOKENS": pool,
                "VK_ID_REFRESH_TOKEN": SEED,
                "VK_ID_CLIENT_ID": CLIENT,
                "VK_ID_DEVICE_ID": DEVICE,
                "VK_ID_URL": srv.url,
                "VK_PIPELINE_SECRET_KEY": SECRET_KEY,
                "VK_PIPELINE_HOME": home,
                "VK_SERVICE_RATE": "5",
            }
            os.environ.update(env)
            try:
                result, _ = in_process(url, srv, world, pool, home)
                row("mixed pool (user, community, service, VK ID): equal to the truth",
                    result.success and matches_truth(world, url))  # fmt: skip
                srv.require_captcha(SERVICE_T, seconds=3600)
                resources = build_resources(requests_per_second=FAST, rate_margin_seconds=0.05)
                with vk_client(resources) as client:
                    for _ in range(8):
                        client.call("groups.getById", group_ids=world.group_ids()[0])
            finally:
                for name in env:
                    os.environ.pop(name, None)
            command = [sys.executable, "-m", "vk_pipeline", "tokens", "--probe"]
            out = subprocess.run(
                command, env={**os.environ, **env}, capture_output=True, text=True, check=False
            )
            print("\n$ python -m vk_pipeline tokens --probe   # user, community, service, VK ID")
            print(out.stdout + out.stderr)
            secrets = (USER_T, CLUB_T, SERVICE_T, SEED, SECRET_KEY, "vk2.a.")
            leaked = sum((out.stdout + out.stderr).count(s) for s in secrets)
            row("token strings in the `tokens` output", leaked, "0")
    finally:
        srv.stop()


SECTIONS = {
    "service": service_section,
    "community": community_section,
    "vkid": vkid_section,
    "cli": cli_section,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a server where databases may be created")
    parser.add_argument("--only", default=",".join(SECTIONS))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    for name in ("VK_ACCESS_TOKEN", "VK_ACCESS_TOKENS", *VK_ID_ENV):
        os.environ.pop(name, None)
    world = World(DEMO_WORLD)
    print("| figure | value | goal |\n|---|---|---|", flush=True)
    for name in args.only.split(","):
        SECTIONS[name](args.database_url, world)


if __name__ == "__main__":
    main()
