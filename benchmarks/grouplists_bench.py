"""Group-list figures: reading a 100,000-line file of mixed spellings (seconds, peak memory),
resolving 10,000 screen names through the emulator (HTTP requests against the goal
ceil(10,000 / 500 / 25) + 1 = 2), and the test corpus read as the sensor reads it.

    .venv/bin/python benchmarks/grouplists_bench.py [--lines 100000] [--names 10000]
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from vk_pipeline.emulator import DEMO_TOKEN, EmulatorServer, World, WorldSpec
from vk_pipeline.grouplists import check_files, load, parse_bytes
from vk_pipeline.grouplists.refs import parse_token
from vk_pipeline.grouplists.resolve import CALLS_PER_EXECUTE, GROUPS_PER_CALL
from vk_pipeline.vk import VKResource

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vk_pipeline.testing.corpus import corpus
from vk_pipeline.testing.worlds import SMALL_WORLD


def spellings(world: World, count: int) -> tuple[str, int]:
    """`count` lines naming the world's communities in every spelling, 2 % of them rejected."""
    gids = world.group_ids()
    forms = [
        "{g}",
        "-{g}",
        "club{g}",
        "public{g}",
        "https://vk.com/club{g}",
        "vk.ru/public{g}/?from=search",
        "https://m.vk.com/wall-{g}_{i}",
        "@{name}",
        "https://www.vk.com/{name}#wall",
        "{NAME}",
    ]
    lines, rejected = [], 0
    for i in range(count):
        if i % 50 == 0:
            lines.append(f"https://vk.com/id{i + 1}" if i % 100 else "Кофейня на углу")
            rejected += 1
            continue
        g = gids[(i * 7919) % len(gids)]
        name = world.group(g)["screen_name"]
        form = forms[i % len(forms)]
        lines.append(form.format(g=g, i=i, name=name, NAME=name.upper()))
    return "\n".join(lines) + "\n", rejected


def measure_read(data: bytes, name: str) -> tuple[float, float, int, int]:
    """Seconds (first read, cold token cache) and peak traced memory in MB of parsing `data`."""
    parse_token.cache_clear()
    gc.collect()
    started = time.perf_counter()
    parsed = parse_bytes(data, name)
    seconds = time.perf_counter() - started
    parse_token.cache_clear()
    del parsed
    gc.collect()
    tracemalloc.start()
    parsed = parse_bytes(data, name)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 2**20, len(parsed.entries), len(parsed.rejections)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--names", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=3.0)
    args = parser.parse_args()

    started = time.perf_counter()
    world = World(WorldSpec(seed=5, groups=args.names, posts=args.names, comments=0))
    world_seconds = time.perf_counter() - started
    rows: list[tuple[str, str, str]] = []

    text, rejected = spellings(world, args.lines)
    plain = text.encode()
    csv = (
        "Название;Ссылка;Подписчики\r\n"
        + "".join(f"Сообщество {i};{line};{i * 3}\r\n" for i, line in enumerate(text.splitlines()))
    ).encode("cp1251")
    for label, data, name in (
        ("plain text, UTF-8", plain, "big.txt"),
        ("CSV `;` cp1251 with header", csv, "big.csv"),
    ):
        seconds, peak, found, bad = measure_read(data, name)
        assert bad == rejected, (bad, rejected)
        rows.append(
            (
                f"read {args.lines:,} lines ({label}, {len(data) / 2**20:.1f} MB)",
                f"{seconds:.2f} s ({args.lines / seconds:,.0f} lines/s); peak {peak:.0f} MB traced "
                f"({peak / (len(data) / 2**20):.1f}x the file); {found:,} references, {bad:,} rejected",
                "",
            )
        )

    # 10,000 communities by the screen name the world gives each (a chosen word address or the
    # default club<ID> one), one per line, resolved exactly as the sensor resolves a file.
    names = [world.group(g)["screen_name"] for g in world.group_ids()[: args.names]]
    chosen = sum(1 for n in names if not n.startswith("club"))
    goal = math.ceil(args.names / GROUPS_PER_CALL / CALLS_PER_EXECUTE) + 1
    unknown = [f"nobody_{i:05d}_here" for i in range(args.names - chosen)]
    cases = {
        f"resolve {args.names:,} screen names ({chosen} chosen, {args.names - chosen:,} club<ID>)": names,
        f"resolve {args.names:,} screen names ({chosen} known, {len(unknown):,} VK does not know)": [
            n for n in names if not n.startswith("club")
        ]
        + unknown,
    }
    with EmulatorServer(world, rate=args.rate, tokens=[DEMO_TOKEN]) as server:
        vk = VKResource(
            access_token=DEMO_TOKEN, api_base_url=server.base_url, requests_per_second=args.rate
        )
        for label, lines in cases.items():
            data = ("\n".join(lines) + "\n").encode()
            with vk.get_client() as client:
                server.reset_stats()
                started = time.perf_counter()
                [report], _ = check_files([("names.txt", parse_bytes(data, "names.txt"))], client)
                seconds = time.perf_counter() - started
            stats = server.stats()
            truth_ok = all(
                world.group(g.id)["screen_name"] == g.info.screen_name for g in report.groups
            )
            rows.append(
                (
                    label,
                    f"{stats['http_requests']} HTTP requests ({stats['api_calls']} groups.getById calls), "
                    f"{len(report.groups):,} resolved, {len(report.rejections):,} reported per line, "
                    f"answers equal truth: {'yes' if truth_ok else 'NO'}, {seconds:.1f} s",
                    f"<= {goal}",
                )
            )

    # The corpus the tests use, on the world the tests use.
    small_world = World(SMALL_WORLD)
    files = corpus(small_world)
    with (
        EmulatorServer(small_world, rate=args.rate, tokens=[DEMO_TOKEN]) as small,
        tempfile.TemporaryDirectory() as tmp,
    ):
        paths = [f.write(Path(tmp)) for f in files]
        small_vk = VKResource(
            access_token=DEMO_TOKEN, api_base_url=small.base_url, requests_per_second=args.rate
        )
        with small_vk.get_client() as client:
            reports, _ = check_files([(str(p), load(p)) for p in paths], client)

    print(
        f"world: {args.names:,} communities (built in {world_seconds:.1f} s), emulator at {args.rate:g} requests/s"
    )
    print("| figure | value | goal |")
    print("|---|---|---|")
    for figure, value, goal_text in rows:
        print(f"| {figure} | {value} | {goal_text} |")
    print()
    print("corpus (vk_pipeline/testing/corpus.py), read and resolved as the sensor does:")
    print("| file | groups registered | lines rejected | expected groups / rejected | equal |")
    print("|---|---|---|---|---|")
    for f, r in zip(files, reports, strict=True):
        expected_rejected = sum(len(v) for v in f.sheets.values()) if f.sheets else len(f.rejected)
        got_lines = len({(x.sheet, x.line) for x in r.rejections})
        same = [g.id for g in r.groups] == f.groups and got_lines == expected_rejected
        shown = f"file error: {r.file_error}" if r.file_error else str(got_lines)
        print(
            f"| {f.name} | {len(r.groups)} | {shown} | {len(f.groups)} / {expected_rejected} | "
            f"{'yes' if same else 'NO'} |"
        )


if __name__ == "__main__":
    main()
