"""`python -m vk_pipeline groups check|add|list|remove`: register communities, inspect what is tracked.

Thin: files are read and resolved by `vk_pipeline.grouplists` exactly as the drop-folder sensor
reads them; what is tracked is the Dagster instance's `vk_groups` partitions, the same the UI shows.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from psycopg import sql

from vk_pipeline.cli.common import EXIT_OK, EXIT_REJECTED, Session, shown
from vk_pipeline.cli.inputs import WordsCommand, require_files
from vk_pipeline.cli.remove import remove
from vk_pipeline.grouplists import ParsedFile, check_files, load, parse_bytes
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME, is_group_key

CLI_SOURCE = "command line"


@click.group()
def groups() -> None:
    """Register VK communities, see what is tracked, stop tracking.

    \b
    Examples:
      python -m vk_pipeline groups check coffee.csv
      python -m vk_pipeline groups add coffee.csv @zerno_coffee vk.com/club123 --list кофейни
      python -m vk_pipeline groups list
      python -m vk_pipeline groups remove zerno_coffee
    """


# -- groups check -----------------------------------------------------------------------------


@groups.command(cls=WordsCommand)
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@click.pass_obj
def check(session: Session, files: tuple[str, ...], as_json: bool) -> int:
    """Read and resolve files as the drop-folder sensor would; register nothing.

    Prints each rejected line as FILE:LINE: reason and a summary per file; exits 1 when anything
    was rejected.

    \b
    Examples:
      python -m vk_pipeline groups check coffee.csv
      python -m vk_pipeline groups check --json lists/*.txt
    """
    require_files(files, all_files=True)
    inputs = [(f, load(Path(f).expanduser())) for f in files]
    with session.vk_client() as client:
        reports, _ = check_files(inputs, client)
    bad = False
    for report in reports:
        bad = bad or bool(report.rejections or report.file_error)
        if as_json:
            click.echo(json.dumps(report.to_json(), ensure_ascii=False))
            continue
        if not report.file_error:  # the summary names a file error; say it once
            for line in report.rejection_lines():
                click.echo(line)
        click.echo(report.summary())
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


@groups.command(cls=WordsCommand)
@click.argument("items", nargs=-1, required=True, metavar="FILE|NAME...")
@click.option(
    "--list",
    "list_name",
    metavar="NAME",
    help="Group list to put them in (default: a file's stem; typed names join no list).",
)
@click.pass_obj
def add(session: Session, items: tuple[str, ...], list_name: str | None) -> int:
    """Register the communities of files or typed references.

    New groups become partitions at once; group_file_sensor starts their first load on its next
    tick (the Dagster daemon must run). A file becomes a group list named after it.

    \b
    Examples:
      python -m vk_pipeline groups add coffee.csv
      python -m vk_pipeline groups add 123 club456 @zerno_coffee vk.com/rybalka --list рыбалка
    """
    require_files(items)
    files = [a for a in items if Path(a).expanduser().is_file()]
    typed = [a for a in items if a not in files]
    inputs = [(f, load(Path(f).expanduser())) for f in files]
    if typed:
        inputs.append((CLI_SOURCE, _typed_refs(typed)))
    with session.vk_client() as client:
        reports, _ = check_files(inputs, client)
    reg, instance = session.registry(), session.instance()
    tracked = {int(k) for k in session.partition_keys() if is_group_key(k)}
    bad = False
    new = 0
    for report in reports:
        bad = bad or bool(report.rejections or report.file_error)
        is_file = report.path != CLI_SOURCE
        record = reg.record(
            report,
            tracked,
            source="cli",
            path=str(Path(report.path).expanduser().resolve()) if is_file else None,
            list_name=(list_name or "") if is_file else list_name,
        )
        keys = [str(i) for i in record.new_group_ids if is_group_key(str(i))]
        if keys:
            session.dagster(
                lambda k=keys: instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, k)
            )
        tracked.update(record.new_group_ids)
        new += len(keys)
        if report.file_error:
            click.echo(report.summary())
            continue
        for line in report.rejection_lines():
            click.echo(line)
        listed = f", list {record.list_name!r}" if record.list_name else ""
        click.echo(
            f"{report.path}: {record.groups_found} groups ({record.groups_new} new, "
            f"{record.groups_known} already registered){listed}, "
            f"{record.rejected_count} lines rejected"
        )
    if new:
        click.echo(
            f"{new} new group(s) are partitions now; group_file_sensor starts their first load on "
            "its next tick (the Dagster daemon must run), and daily_refresh keeps them current."
        )
    else:
        click.echo("nothing new to register")
    return EXIT_REJECTED if bad else EXIT_OK


# -- groups list ------------------------------------------------------------------------------


def _stored_groups(session: Session, ids: list[int]) -> dict[int, tuple[Any, ...]]:
    """screen name, name and status of groups the `groups` asset stored (partitions added in
    the UI or by `make dev` have no registry row)."""
    if not ids:
        return {}
    postgres = session.postgres()
    rows = postgres.execute(
        sql.SQL("SELECT id, screen_name, name, deactivated FROM {} WHERE id = ANY(%s)").format(
            sql.Identifier(postgres.schema_name, "groups")
        ),
        (ids,),
    )
    return {r[0]: r[1:] for r in rows}


def listed_rows(session: Session, include_removed: bool) -> list[dict[str, Any]]:
    """Every partition of `vk_groups` (the UI's list, invalid keys included) and every
    registered group, tracked or (with `include_removed`) no longer."""
    keys = session.partition_keys()
    tracked = set(keys)
    rows: list[dict[str, Any]] = []
    covered: set[str] = set()
    for g in session.registry().registered(include_removed=include_removed):
        key = str(g.group_id)
        covered.add(key)
        rows.append(
            {
                "key": key,
                "id": g.group_id,
                "valid": True,
                "screen_name": g.screen_name,
                "name": g.name,
                "status": g.deactivated or "active",
                "lists": g.lists,
                "tracked": key in tracked,
                "registered_at": g.registered_at.isoformat(),
                "removed_at": g.removed_at.isoformat() if g.removed_at else None,
            }
        )
    rest = [k for k in keys if k not in covered]
    stored = _stored_groups(session, [int(k) for k in rest if is_group_key(k)])
    for key in rest:
        valid = is_group_key(key)
        screen_name, name, deactivated = (None, None, None)
        status = "invalid key"
        if valid:
            found = stored.get(int(key))
            if found:
                screen_name, name, deactivated = found
            status = (deactivated or "active") if found else "not loaded yet"
        rows.append(
            {
                "key": key,
                "id": int(key) if valid else None,
                "valid": valid,
                "screen_name": screen_name,
                "name": name,
                "status": status,
                "lists": [],
                "tracked": True,
                "registered_at": None,
                "removed_at": None,
            }
        )
    return rows


@groups.command("list")
@click.option("--lists", "show_lists", is_flag=True, help="Group lists and their sizes instead.")
@click.option("--all", "include_removed", is_flag=True, help="Include groups no longer tracked.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def list_groups(session: Session, show_lists: bool, include_removed: bool, as_json: bool) -> int:
    """The tracked groups: every partition the Dagster UI shows, with what VK said about it.

    Columns: id, screen name, status, tracked, lists, name. A partition key that is not a group
    id (typed into the UI's "add partition" box) is listed as an invalid key; nothing is
    crawled for it, and `groups remove KEY` removes it.

    \b
    Examples:
      python -m vk_pipeline groups list
      python -m vk_pipeline groups list --all --json
      python -m vk_pipeline groups list --lists
    """
    if show_lists:
        for s in session.registry().lists():
            if as_json:
                row = {"list": s.name, "groups": s.members, "source": s.source}
                click.echo(json.dumps(row, ensure_ascii=False))
            else:
                click.echo(f"{s.name}\t{s.members} groups\t{s.source or ''}")
        return EXIT_OK
    rows = listed_rows(session, include_removed)
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        elif not row["valid"]:
            click.echo(
                f"{shown(row['key'])}\t\tinvalid key\ttracked\t\t"
                "(not a group id: nothing is crawled for it)"
            )
        else:
            state = "tracked" if row["tracked"] else "not tracked"
            click.echo(
                f"{row['id']}\t{row['screen_name'] or ''}\t{row['status']}\t{state}\t"
                f"{','.join(row['lists'])}\t{row['name'] or ''}"
            )
    if not as_json:
        valid = sum(1 for r in rows if r["tracked"] and r["valid"])
        invalid = sum(1 for r in rows if not r["valid"])
        line = f"{valid} groups tracked"
        if invalid:
            line += f", {invalid} invalid partition key(s) (remove one with `groups remove KEY`)"
        click.echo(line)
    return EXIT_OK


groups.add_command(remove)
