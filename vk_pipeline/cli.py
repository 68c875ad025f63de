"""`python -m vk_pipeline groups check|add|list|remove ...` and `python -m vk_pipeline search ...`.

Thin wrappers: files are read and resolved by `vk_pipeline.grouplists` exactly as the drop-folder
sensor reads them. VK and Postgres are reached through the same resources as every run (`vk_pipeline.resources`:
`VK_API_BASE_URL`, the token pool, the shared rate budget in `DATABASE_URL` or the embedded
server), the Dagster instance through `DAGSTER_HOME`.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from vk_pipeline import resources
from vk_pipeline.grouplists import (
    GroupRegistry,
    ParsedFile,
    Ref,
    check_files,
    load,
    parse_bytes,
    parse_token,
    resolve,
)
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.resources import ENV_TOKEN, ENV_TOKENS
from vk_pipeline.vk import VKClient, VKError

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
CLI_SOURCE = "command line"


class CliError(Exception):
    """A problem the user can fix (missing token, no DAGSTER_HOME ...); printed, not traced."""


# -- the outside world ------------------------------------------------------------------------


@contextmanager
def vk_client() -> Iterator[VKClient]:
    """The client every entry point uses: the whole token pool, the shared rate budget."""
    if not (os.environ.get(ENV_TOKENS) or os.environ.get(ENV_TOKEN)):
        raise CliError(
            f"{ENV_TOKEN} (or {ENV_TOKENS}) is not set: communities are resolved through the VK "
            "API (for the local emulator, see `make dev`)"
        )
    with resources.vk_client() as client:
        yield client


def registry() -> GroupRegistry:
    return GroupRegistry(resources.build_resources()["postgres"])


def instance() -> Any:
    import dagster as dg

    if not os.environ.get("DAGSTER_HOME"):
        raise CliError(
            "DAGSTER_HOME is not set: point it at the Dagster instance the daemon uses "
            "(`make dev` uses .local/dagster_home)"
        )
    return dg.DagsterInstance.get()


# -- groups check -----------------------------------------------------------------------------


def _read_inputs(files: Sequence[str]) -> list[tuple[str, ParsedFile]]:
    return [(f, load(f)) for f in files]


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    with vk_client() as client:
        reports, _ = check_files(_read_inputs(args.files), client)
    bad = False
    for report in reports:
        bad = bad or bool(report.rejections or report.file_error)
        if args.json:
            out.write(json.dumps(report.to_json(), ensure_ascii=False) + "\n")
            continue
        for line in report.rejection_lines():
            out.write(line + "\n")
        out.write(report.summary() + "\n")
    return EXIT_REJECTED if bad else EXIT_OK


# -- groups add -------------------------------------------------------------------------------


def _typed_refs(refs: Sequence[str]) -> ParsedFile:
    """References typed as arguments, read like a file with one per line."""
    parsed = parse_bytes("\n".join(refs).encode(), CLI_SOURCE)
    # Each invocation is its own batch: adding the same names again (say, after a removal) must
    # get fresh run keys, so the batch's key is not the content alone.
    parsed.sha256 = hashlib.sha256(
        f"{time.time_ns()}\n".encode() + "\n".join(refs).encode()
    ).hexdigest()
    return parsed


def cmd_add(args: argparse.Namespace, out: TextIO) -> int:
    files = [a for a in args.items if Path(a).is_file()]
    typed = [a for a in args.items if not Path(a).is_file()]
    inputs = _read_inputs(files)
    if typed:
        inputs.append((CLI_SOURCE, _typed_refs(typed)))
    with vk_client() as client:
        reports, _ = check_files(inputs, client)
    reg, inst = registry(), instance()
    tracked = {int(k) for k in inst.get_dynamic_partitions(GROUP_PARTITIONS_NAME) if k.isdigit()}
    bad = False
    for report in reports:
        bad = bad or bool(report.rejections or report.file_error)
        is_file = report.path != CLI_SOURCE
        record = reg.record(
            report,
            tracked,
            source="cli",
            path=str(Path(report.path).resolve()) if is_file else None,
            list_name=(args.list or "") if is_file else args.list,
        )
        keys = [str(i) for i in record.new_group_ids]
        if keys:
            inst.add_dynamic_partitions(GROUP_PARTITIONS_NAME, keys)
        tracked.update(record.new_group_ids)
        for line in report.rejection_lines():
            out.write(line + "\n")
        listed = f", list {record.list_name!r}" if record.list_name else ""
        out.write(
            f"{report.path}: {record.groups_found} groups ({record.groups_new} new, "
            f"{record.groups_known} already registered){listed}, "
            f"{record.rejected_count} lines rejected\n"
        )
    out.write(
        "New groups are partitions now; group_file_sensor starts their first load on its next "
        "tick (the Dagster daemon must run), and daily_refresh keeps them current.\n"
    )
    return EXIT_REJECTED if bad else EXIT_OK


# -- groups list ------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    reg = registry()
    if args.lists:
        summaries = reg.lists()
        if args.json:
            for s in summaries:
                out.write(
                    json.dumps(
                        {"list": s.name, "groups": s.members, "source": s.source},
                        ensure_ascii=False,
                    )
                    + "\n"
                )
        else:
            for s in summaries:
                out.write(f"{s.name}\t{s.members} groups\t{s.source or ''}\n")
        return EXIT_OK
    tracked = set(instance().get_dynamic_partitions(GROUP_PARTITIONS_NAME))
    groups = reg.registered(include_removed=args.all)
    for g in groups:
        row = {
            "id": g.group_id,
            "screen_name": g.screen_name,
            "name": g.name,
            "status": g.deactivated or "active",
            "lists": g.lists,
            "tracked": str(g.group_id) in tracked,
            "registered_at": g.registered_at.isoformat(),
            "removed_at": g.removed_at.isoformat() if g.removed_at else None,
        }
        if args.json:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            state = "tracked" if row["tracked"] else "not tracked"
            out.write(
                f"{g.group_id}\t{g.screen_name or ''}\t{row['status']}\t{state}\t"
                f"{','.join(g.lists)}\t{g.name or ''}\n"
            )
    if not args.json:
        out.write(f"{sum(1 for g in groups if str(g.group_id) in tracked)} groups tracked\n")
    return EXIT_OK


# -- groups remove ----------------------------------------------------------------------------


def _refs_of(items: Sequence[str], err: TextIO) -> list[tuple[str, Ref]]:
    refs: list[tuple[str, Ref]] = []
    for item in items:
        if Path(item).is_file():
            parsed = load(item)
            refs.extend((f"{item}:{e.line}", e.ref) for e in parsed.entries)
            for r in parsed.rejections:
                err.write(f"{item}:{r.line}: {r.reason}\n")
            continue
        p = parse_token(item)
        if p.ref is None:
            err.write(f"{item}: {p.reason}\n")
        else:
            refs.append((item, p.ref))
    return refs


def cmd_remove(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    refs = _refs_of(args.items, err)
    reg = registry()
    names = {str(r.value) for _, r in refs if r.kind == "name"}
    known = reg.ids_for_names(names)
    unknown = [r for _, r in refs if r.kind == "name" and str(r.value) not in known]
    resolved: dict[Ref, int] = {}
    if unknown:
        with vk_client() as client:
            resolution = resolve(client, unknown)
        resolved = {ref: info.id for ref, info in resolution.found.items()}
    ids: list[int] = []
    missing = 0
    for label, ref in refs:
        gid = ref.value if ref.kind == "id" else known.get(str(ref.value), resolved.get(ref))
        if gid is None:
            err.write(f"{label}: no such community\n")
            missing += 1
        elif int(gid) not in ids:
            ids.append(int(gid))
    inst = instance()
    removed = 0
    for gid in ids:
        if inst.has_dynamic_partition(GROUP_PARTITIONS_NAME, str(gid)):
            inst.delete_dynamic_partition(GROUP_PARTITIONS_NAME, str(gid))
            removed += 1
    reg.mark_removed(ids)
    out.write(
        f"stopped tracking {removed} group(s)"
        + (f" ({len(ids) - removed} were not tracked)" if len(ids) > removed else "")
        + "; their rows in groups, posts and comments stay\n"
    )
    return EXIT_REJECTED if missing else EXIT_OK


# -- entry point ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vk_pipeline", description=__doc__)
    top = parser.add_subparsers(dest="command", required=True)
    groups = top.add_parser("groups", help="register VK communities and inspect group lists")
    sub = groups.add_subparsers(dest="action", required=True)
    check = sub.add_parser(
        "check", help="read and resolve files as the sensor would; register nothing"
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--json", action="store_true", help="one JSON object per file")
    add = sub.add_parser("add", help="register the groups of files or typed references")
    add.add_argument("items", nargs="+", metavar="FILE|NAME")
    add.add_argument("--list", help="group list name (default: a file's stem; none for names)")
    lst = sub.add_parser("list", help="registered groups (or --lists)")
    lst.add_argument("--lists", action="store_true", help="group lists and their sizes")
    lst.add_argument("--all", action="store_true", help="include groups no longer tracked")
    lst.add_argument("--json", action="store_true")
    rm = sub.add_parser("remove", help="stop tracking groups: partition removed, rows kept")
    rm.add_argument("items", nargs="+", metavar="FILE|NAME")
    top.add_parser("search", help="full-text search over stored posts and comments", add_help=False)
    return parser


def run_search(argv: list[str], err: TextIO) -> int:
    try:
        # Imported on use: the search module (and what it imports) is not needed for `groups`.
        search = importlib.import_module("vk_pipeline.search")
    except ModuleNotFoundError as exc:
        if exc.name != "vk_pipeline.search":
            raise
        err.write("search is not available in this version of vk_pipeline\n")
        return EXIT_USAGE
    return int(search.main(argv) or 0)


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    err = err or sys.stderr
    if argv and argv[0] == "search":
        return run_search(argv[1:], err)
    args = _parser().parse_args(argv)
    try:
        if args.action == "check":
            return cmd_check(args, out)
        if args.action == "add":
            return cmd_add(args, out)
        if args.action == "list":
            return cmd_list(args, out)
        return cmd_remove(args, out, err)
    except CliError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_USAGE
    except VKError as exc:
        err.write(f"error: VK could not answer: {exc}\n")
        return EXIT_UNAVAILABLE
