"""`python -m vk_pipeline search "кофе -чай" [--group ID] [--list NAME] [--since DATE] ...`

Full-text search over stored comments (or posts with --posts), through the SQL functions
`vk.search_comments` / `vk.search_posts` (migration 0005). Prints group, link, date, author id
and a highlighted snippet per hit, best first, and the cursor of the next page.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, TextIO

import psycopg
from psycopg import sql

from vk_pipeline.storage.resource import DatabaseUnreachableError, PostgresResource

PROG = "python -m vk_pipeline search"
# Highlights travel as STX/ETX: unlike <b>, they cannot occur in a VK text, so the snippet can be
# HTML-escaped (or printed) first and the markers replaced after.
MARK_ON, MARK_OFF = "\x02", "\x03"
HEADLINE = f"StartSel={MARK_ON}, StopSel={MARK_OFF}, MaxFragments=2, MaxWords=24, MinWords=8, "
HEADLINE += 'FragmentDelimiter=" … "'


class UsageError(ValueError):
    """A bad argument; the message names it."""


def parse_when(value: str, flag: str, *, end_of_day: bool = False) -> datetime:
    """An ISO date or datetime (UTC unless it says otherwise). A bare date given to --until
    means through the end of that day."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{flag}: {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 date and time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def group_id(value: str) -> int:
    text = value.strip()
    for prefix in ("-", "club", "public", "event"):
        if text.startswith(prefix) and text[len(prefix) :].isdigit():
            text = text[len(prefix) :]
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a VK group id (e.g. 1 or club1)")
    return int(text)


def limit(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 1000:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number from 1 to 1000")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Search stored VK comments (or posts) in Russian: words match in any form "
        '(кошка finds кошки); "a phrase", -word and OR work as in web search engines.',
    )
    parser.add_argument("query", help="e.g. 'кофе -чай', '\"хороший кофе\"', 'кофе OR чай'")
    parser.add_argument(
        "--group", "-g", action="append", type=group_id, metavar="ID",
        help="only this group (repeatable)",
    )  # fmt: skip
    parser.add_argument("--list", "-l", metavar="NAME", help="only the groups of this group list")
    parser.add_argument("--since", metavar="DATE", help="from this date or time (UTC)")
    parser.add_argument("--until", metavar="DATE", help="up to this date (inclusive) or time")
    parser.add_argument("--posts", action="store_true", help="search posts instead of comments")
    parser.add_argument("--limit", "-n", type=limit, default=20, help="results (default 20)")
    parser.add_argument("--after", metavar="CURSOR", help="the next page: a cursor printed before")
    parser.add_argument(
        "--order", choices=("auto", "rank", "date"), default="auto",
        help="rank: best first; date: newest first; auto (default): rank unless more than "
        "--rank-limit match",
    )  # fmt: skip
    parser.add_argument("--rank-limit", type=int, default=2000, help=argparse.SUPPRESS)
    parser.add_argument("--deleted", action="store_true", help="include deleted posts/comments")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--database-url",
        help="default: $DATABASE_URL, else the embedded server in .local/pgdata",
    )
    parser.add_argument("--schema", default="vk")
    return parser


def search(
    postgres: PostgresResource,
    query: str,
    *,
    posts: bool = False,
    group_ids: Sequence[int] | None = None,
    list_name: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    lim: int = 20,
    after: str | None = None,
    order: str = "auto",
    rank_limit: int = 2000,
    include_deleted: bool = False,
) -> list[dict[str, Any]]:
    """One page of results as dicts (the SQL function's columns)."""
    function = sql.Identifier(postgres.schema_name, "search_posts" if posts else "search_comments")
    stmt = sql.SQL(
        "SELECT * FROM {}(%(q)s, group_ids => %(groups)s, since => %(since)s,"
        " until => %(until)s, lim => %(lim)s, after => %(after)s,"
        " include_deleted => %(deleted)s, list_name => %(list)s, order_by => %(order)s,"
        " rank_limit => %(rank_limit)s, headline_options => %(headline)s)"
    ).format(function)
    params = {
        "q": query,
        "groups": list(group_ids) if group_ids else None,
        "since": since,
        "until": until,
        "lim": lim,
        "after": after,
        "deleted": include_deleted,
        "list": list_name,
        "order": order,
        "rank_limit": rank_limit,
        "headline": HEADLINE,
    }
    with postgres.connection() as conn, conn.cursor() as cur:
        cur.execute(stmt, params)
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def snippet_text(snippet: str | None, bold: bool) -> str:
    text = " ".join((snippet or "").split())  # newlines and tabs of VK texts on one line
    on, off = ("\x1b[1m", "\x1b[0m") if bold else ("**", "**")
    return text.replace(MARK_ON, on).replace(MARK_OFF, off)


def snippet_html(snippet: str | None) -> str:
    return html.escape(snippet or "").replace(MARK_ON, "<b>").replace(MARK_OFF, "</b>")


def print_text(rows: list[dict[str, Any]], posts: bool, out: TextIO, bold: bool) -> None:
    for n, r in enumerate(rows, 1):
        when = r["date"].astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if r["date"] else "?"
        flags = " [deleted]" if r["is_deleted"] else ""
        if posts and r.get("is_pinned"):
            flags += " [pinned]"
        out.write(
            f"{n}. group {r['group_id']}  {r['url']}  {when}  author {r['from_id']}"
            f"  rank {r['rank']:.4f}{flags}\n"
        )
        out.write(f"   {snippet_text(r['snippet'], bold)}\n")


def as_json(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in ("snippet", "cursor")}
    out["date"] = row["date"].isoformat() if row["date"] else None
    text = " ".join((row["snippet"] or "").split())
    out["snippet"] = text.replace(MARK_ON, "").replace(MARK_OFF, "")
    out["snippet_html"] = snippet_html(row["snippet"])
    out["cursor"] = row["cursor"]
    return out


def main(
    argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run the command; 0 on success, 1 when the database refuses, 2 on bad arguments."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the message naming the argument
        return int(exc.code or 0)
    try:
        since = parse_when(args.since, "--since") if args.since else None
        until = parse_when(args.until, "--until", end_of_day=True) if args.until else None
        if not args.query.strip():
            raise UsageError("the query is empty")
    except UsageError as exc:
        err.write(f"{PROG}: error: {exc}\n")
        return 2
    postgres = PostgresResource(database_url=args.database_url, schema_name=args.schema)
    try:
        rows = search(
            postgres,
            args.query,
            posts=args.posts,
            group_ids=args.group,
            list_name=args.list,
            since=since,
            until=until,
            lim=args.limit,
            after=args.after,
            order=args.order,
            rank_limit=args.rank_limit,
            include_deleted=args.deleted,
        )
    except DatabaseUnreachableError as exc:
        err.write(f"{PROG}: error: {exc}\n")
        return 1
    except psycopg.errors.InvalidParameterValue as exc:  # bad cursor, unknown list, ...
        diag = exc.diag
        hint = f" ({diag.message_hint})" if diag.message_hint else ""
        err.write(f"{PROG}: error: {diag.message_primary}{hint}\n")
        return 2
    next_cursor = rows[-1]["cursor"] if len(rows) == args.limit else None
    if args.json:
        json.dump(
            {"results": [as_json(r) for r in rows], "next_cursor": next_cursor},
            out,
            ensure_ascii=False,
            indent=2,
        )
        out.write("\n")
        return 0
    if not rows:
        out.write("no results\n")
        return 0
    bold = out.isatty() and os.environ.get("NO_COLOR") is None
    print_text(rows, args.posts, out, bold)
    order = rows[0]["ordered_by"]
    out.write(f"\n{len(rows)} result(s), {'best first' if order == 'rank' else 'newest first'}")
    if next_cursor:
        out.write(f"; next page: --after {next_cursor}")
    out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
