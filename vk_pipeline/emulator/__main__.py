"""`python -m vk_pipeline.emulator`: serve a seeded world until Ctrl-C or SIGTERM.

Tokens may be given with --tokens or, to keep them out of the process list, in the
comma-separated environment variable VK_EMULATOR_TOKENS. Only their number is printed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from vk_pipeline.emulator.server import DEMO_TOKEN, EmulatorServer
from vk_pipeline.emulator.world import World, WorldSpec


def _split(values: list[str] | None) -> list[str]:
    return [t.strip() for v in values or [] for t in v.split(",") if t.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vk_pipeline.emulator", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=float, default=3, help="requests per second per token")
    ap.add_argument("--group-rate", type=float, default=None)
    ap.add_argument("--tokens", nargs="*", help=f"accepted user tokens (default: {DEMO_TOKEN})")
    ap.add_argument("--group-tokens", nargs="*", help="accepted community tokens")
    ap.add_argument("--groups", type=int, default=20)
    ap.add_argument("--posts", type=int, default=5000)
    ap.add_argument("--comments", type=int, default=150_000)
    ap.add_argument("--no-special-groups", action="store_true")
    ap.add_argument("--wall-get-quota", type=int, default=5000)
    ap.add_argument(
        "--daily-quota",
        action="append",
        default=[],
        metavar="METHOD=N",
        help="per-token daily limit for another method (repeatable)",
    )
    ap.add_argument("--max-response-bytes", type=int, default=5_000_000)
    args = ap.parse_args(argv)

    daily_quotas: dict[str, int] = {}
    for item in args.daily_quota:
        method, sep, n = item.partition("=")
        if not sep or not method.strip() or not n.strip().isdigit():
            ap.error(f"--daily-quota expects METHOD=N, got {item!r}")
        daily_quotas[method.strip()] = int(n)
    tokens = _split(args.tokens) or _split([os.environ.get("VK_EMULATOR_TOKENS", "")])
    spec = WorldSpec(
        seed=args.seed,
        groups=args.groups,
        posts=args.posts,
        comments=args.comments,
        special_groups=not args.no_special_groups,
    )
    server = EmulatorServer(
        World(spec),
        rate=args.rate,
        group_rate=args.group_rate,
        tokens=tokens,
        group_tokens=_split(args.group_tokens),
        wall_get_daily_quota=args.wall_get_quota,
        daily_quotas=daily_quotas,
        max_response_bytes=args.max_response_bytes,
        seed=args.seed,
        host=args.host,
        port=args.port,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    print(f"VK emulator serving {server.base_url}", flush=True)
    print(f"accepted tokens: {server.token_count}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        print("VK emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
