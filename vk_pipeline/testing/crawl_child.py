"""A crawl in a process of its own, for tests and benchmarks that kill it or measure its memory:
`python -m vk_pipeline.testing.crawl_child DATABASE_URL VK_BASE_URL AS_OF KEY... [--rate N]`.
Prints the process's peak RSS in MB as JSON when the run ends."""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import dagster as dg

from vk_pipeline.emulator import DEMO_TOKEN
from vk_pipeline.resources import build_resources
from vk_pipeline.testing.crawl import crawl


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("base_url")
    parser.add_argument("as_of")
    parser.add_argument("keys", nargs="+")
    parser.add_argument("--rate", type=float, default=3.0)
    parser.add_argument("--tokens", default=DEMO_TOKEN, help="comma-separated")
    parser.add_argument("--margin", type=float, default=0.06, help="seconds added to each window")
    args = parser.parse_args(argv)
    resources = build_resources(
        database_url=args.database_url,
        tokens=args.tokens,
        vk_api_base_url=args.base_url,
        requests_per_second=args.rate,
        rate_margin_seconds=args.margin,
    )
    with dg.instance_for_test() as instance:
        result, _ = crawl(
            instance, resources, args.keys, {"as_of": args.as_of}, raise_on_error=False
        )
    print(json.dumps({"success": result.success, "peak_rss_mb": round(peak_rss_mb(), 1)}))
    return 0 if result.success else 1


def peak_rss_mb() -> float:
    """This process's peak resident memory. Not getrusage's ru_maxrss: Linux carries that over
    exec from the forked parent, so a child of a big process would report the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
