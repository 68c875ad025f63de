"""`python -m vk_pipeline.emulator`: serve a seeded world until Ctrl-C or SIGTERM.

Tokens may be given with --tokens / --group-tokens / --service-tokens or, to keep them out of
the process list, in the comma-separated environment variables VK_EMULATOR_TOKENS,
VK_EMULATOR_GROUP_TOKENS and VK_EMULATOR_SERVICE_TOKENS. VK ID apps come only from
VK_EMULATOR_VKID_CLIENTS ("client_id:refresh_token,..."). Only their numbers are printed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from vk_pipeline.emulator.server import DEMO_TOKEN, EmulatorServer
from vk_pipeline.emulator.vkid import DEFAULT_ACCESS_TTL
from vk_pipeline.emulator.world import World, WorldSpec


def _split(values: list[str] | None) -> list[str]:
    return [t.strip() for v in values or [] for t in v.split(",") if t.strip()]


def _vkid_clients(raw: str) -> dict[str, str]:
    clients: dict[str, str] = {}
    for n, item in enumerate(_split([raw]), 1):
        cid, sep, refresh = item.partition(":")
        if not sep or not cid.strip() or not refresh.strip():
            # Never echo the item: it holds a refresh token.
            raise ValueError(f"VK_EMULATOR_VKID_CLIENTS item {n}: expected client_id:refresh_token")
        clients[cid.strip()] = refresh.strip()
    return clients


def _tokens(values: list[str] | None, env: str) -> list[str]:
    return _split(values) or _split([os.environ.get(env, "")])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vk_pipeline.emulator", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=float, default=3, help="requests per second per token")
    ap.add_argument("--group-rate", type=float, default=None, help="community tokens (20)")
    ap.add_argument("--service-rate", type=float, default=None, help="service tokens (3)")
    ap.add_argument("--tokens", nargs="*", help=f"accepted user tokens (default: {DEMO_TOKEN})")
    ap.add_argument("--group-tokens", nargs="*", help="accepted community tokens")
    ap.add_argument("--service-tokens", nargs="*", help="accepted service tokens")
    ap.add_argument(
        "--vkid-access-ttl",
        type=float,
        default=DEFAULT_ACCESS_TTL,
        help="lifetime of access tokens minted at /oauth2/auth, seconds",
    )
    ap.add_argument("--groups", type=int, default=20)
    ap.add_argument("--posts", type=int, default=5000)
    ap.add_argument("--comments", type=int, default=150_000)
    ap.add_argument("--no-special-groups", action="store_true")
    ap.add_argument(
        "--now", type=int, default=None, help="the world's clock, Unix seconds (default 2025-01-01)"
    )
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
    try:
        vkid_clients = _vkid_clients(os.environ.get("VK_EMULATOR_VKID_CLIENTS", ""))
    except ValueError as e:
        ap.error(str(e))
    spec = WorldSpec(
        seed=args.seed,
        groups=args.groups,
        posts=args.posts,
        comments=args.comments,
        special_groups=not args.no_special_groups,
        **({"now": args.now} if args.now is not None else {}),
    )
    server = EmulatorServer(
        World(spec),
        rate=args.rate,
        group_rate=args.group_rate,
        service_rate=args.service_rate,
        tokens=_tokens(args.tokens, "VK_EMULATOR_TOKENS"),
        group_tokens=_tokens(args.group_tokens, "VK_EMULATOR_GROUP_TOKENS"),
        service_tokens=_tokens(args.service_tokens, "VK_EMULATOR_SERVICE_TOKENS"),
        vkid_clients=vkid_clients,
        vkid_access_ttl=args.vkid_access_ttl,
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
    if vkid_clients:
        print(f"VK ID apps: {len(vkid_clients)} at {server.url}/oauth2/auth", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        print("VK emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
