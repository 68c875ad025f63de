"""`python -m vk_pipeline tokens`: every token of the pool by fingerprint, as the shared budget
knows it (kind, rate, requests, quota stops and their reset, VK ID expiry, set-aside reason).

Tokens are read from the environment only to compute their fingerprints; nothing printed here
is, or contains, a token.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

import click

from vk_pipeline.cli.common import EXIT_OK, CliError, Session
from vk_pipeline.resources import ENV_TOKEN, ENV_TOKENS, ENV_VK_ID_REFRESH_TOKEN
from vk_pipeline.vk.tokens import GROUP, KIND_NAMES, SERVICE, USER, fingerprint, split_tokens
from vk_pipeline.vk.vkid import credential_fingerprint

COLUMNS = ("TOKEN", "SOURCE", "KIND", "RATE", "REQUESTS", "LAST USED", "QUOTA STOPS",
           "VK ID EXPIRES", "SET ASIDE")  # fmt: skip


def pool() -> list[tuple[str, str]]:
    """(fingerprint, where it comes from) of every token the pipeline would use."""
    source = ENV_TOKENS if os.environ.get(ENV_TOKENS) else ENV_TOKEN
    out = [(fingerprint(t), source) for t in split_tokens(os.environ.get(source))]
    if os.environ.get(ENV_VK_ID_REFRESH_TOKEN):
        cred = credential_fingerprint(
            os.environ.get("VK_ID_CLIENT_ID", ""), os.environ.get("VK_ID_DEVICE_ID", "")
        )
        out.append((cred, "VK ID"))
    return out


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "-"


def rows(session: Session) -> list[dict[str, Any]]:
    tokens = pool()
    if not tokens:
        raise CliError(
            f"no token in the pool: set {ENV_TOKENS} (or {ENV_TOKEN}) and/or "
            f"{ENV_VK_ID_REFRESH_TOKEN}"
        )
    vk = session.resources()["vk"]
    session.postgres().ensure_schema()
    limiter = vk.budget.limiter(vk.requests_per_second, vk.rate_margin_seconds)
    rates = {
        USER: vk.requests_per_second,
        SERVICE: vk.service_requests_per_second,
        GROUP: vk.community_requests_per_second,
    }
    known = limiter.report([fp for fp, _ in tokens])
    out = []
    for fp, source in tokens:
        entry = known[fp]
        kind = USER if source == "VK ID" else entry["kind"]
        out.append(
            {
                "token": fp,
                "source": source,
                "kind": KIND_NAMES[kind] if kind else "unknown (not used yet)",
                "learned_by": entry["learned_by"],
                "rate_per_second": rates[kind or USER],
                "requests": entry["requests"],
                "last_used": entry["last_used"],
                "quota_stops": entry["quotas"],
                "vk_id": entry["vk_id"],
                "set_aside": entry["set_aside"],
            }
        )
    return out


def _cells(row: dict[str, Any]) -> list[str]:
    quotas = ", ".join(f"{q['method']} until {_when(q['resets_at'])}" for q in row["quota_stops"])
    vkid = row["vk_id"]
    if row["source"] != "VK ID":
        expiry = "-"
    elif vkid is None:
        expiry = "not refreshed yet"
    elif not vkid["alive"]:
        expiry = f"refresh refused ({vkid['last_error']}): sign in again"
    else:
        expiry = f"{_when(vkid['expires_at'])} ({vkid['refreshes']} refreshes)"
    aside = row["set_aside"]
    held = f"until {_when(aside['until'])}: {aside['reason']}" if aside else "-"
    return [
        row["token"],
        row["source"],
        row["kind"],
        f"{row['rate_per_second']:g}/s",
        str(row["requests"]),
        _when(row["last_used"]),
        quotas or "-",
        expiry,
        held,
    ]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per token.")
@click.option("--probe", is_flag=True,
              help="First settle unknown kinds: one request to VK per such token.")  # fmt: skip
@click.pass_obj
def tokens(session: Session, as_json: bool, probe: bool) -> int:
    """List the token pool by fingerprint: kind, rate, use, quotas, VK ID expiry, set-aside.

    The pool is VK_ACCESS_TOKENS (or VK_ACCESS_TOKEN) plus the VK ID credential when
    VK_ID_REFRESH_TOKEN is set; what is known of each comes from the shared budget in the
    database. Never prints a token.

    \b
    Examples:
      python -m vk_pipeline tokens
      python -m vk_pipeline tokens --json
      python -m vk_pipeline tokens --probe
    """
    if probe:
        with session.vk_client() as client:
            client.probe_kinds()
    found = rows(session)
    if as_json:
        for row in found:
            click.echo(json.dumps(row, default=str, ensure_ascii=False))
        return EXIT_OK
    table = [list(COLUMNS), *(_cells(r) for r in found)]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS) - 1)]
    for r in table:
        click.echo("  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]))
    return EXIT_OK
