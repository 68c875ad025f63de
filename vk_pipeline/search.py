"""Full-text search over stored comments and posts: the Python API behind `python -m vk_pipeline search`.

`search()` calls the SQL functions `vk.search_comments` / `vk.search_posts` (migration 0005) and
validates its input first, whoever calls it (the command line, a notebook): ids in range, query
length and word count capped, no NUL. Database errors leave it as `SearchInputError` (the input
is at fault: a bad cursor, an unknown list, a query too complex) or `SearchError`; no psycopg error
class reaches a caller. The command (`vk_pipeline.cli.search`) only parses arguments and prints.

It stays in this module, apart from the command, so that every caller gets the same validation;
it takes the project's `PostgresResource` (pools, migrations on first use) rather than a bare
connection, so it is not Dagster-free, and needs not be: its callers build resources through
`vk_pipeline.resources` anyway.
"""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from vk_pipeline.grouplists.refs import MAX_GROUP_ID
from vk_pipeline.storage import PostgresResource

# -- limits: one place (the README's limits table quotes them) -------------------------------
# websearch_to_tsquery's work and the plan's size grow with the query: a 200 KB query raised
# StatementTooComplex and 300,000 ORs ran 13.6 s before ProgramLimitExceeded. People search with
# a few words; these caps are far above that and far below where PostgreSQL struggles.
MAX_QUERY_CHARS = 1_000
MAX_QUERY_WORDS = 32  # words of the query, OR and each word of a "phrase" included
MAX_GROUP_FILTERS = 1_000  # --group values in one search
MAX_RESULTS = 1_000  # rows per page (the SQL function refuses more too)
MAX_NAME_CHARS = 1_000  # a group list's name, a cursor
STATEMENT_TIMEOUT_MS = 30_000  # one page; beyond it the search is cancelled, with a message
ORDERS = ("auto", "rank", "date")
DEFAULT_RANK_LIMIT = 2_000

# Highlights travel as STX/ETX: unlike <b>, they cannot occur in a VK text, so the snippet can be
# HTML-escaped (or printed) first and the markers replaced after.
MARK_ON, MARK_OFF = "\x02", "\x03"
HEADLINE = f"StartSel={MARK_ON}, StopSel={MARK_OFF}, MaxFragments=2, MaxWords=24, MinWords=8, "
HEADLINE += 'FragmentDelimiter=" … "'
_WORD = re.compile(r"\w+")


class SearchError(Exception):
    """The search could not run; the message is one line for a person."""


class SearchInputError(SearchError, ValueError):
    """The input is at fault; the message names it."""


# -- input ------------------------------------------------------------------------------------


def parse_when(value: str, name: str, *, end_of_day: bool = False) -> datetime:
    """An ISO date or datetime (UTC unless it says otherwise). A bare date given as the end of a
    range means through the end of that day."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise SearchInputError(
            f"{name}: {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 date and time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_group_id(value: str) -> int:
    """`1`, `-1`, `club1`, `public1`, `event1` -> 1; anything else, or out of VK's range, refused."""
    text = value.strip()
    for prefix in ("-", "club", "public", "event"):
        if text.startswith(prefix) and text[len(prefix) :].isdigit():
            text = text[len(prefix) :]
    if not (text.isascii() and text.isdigit()):
        raise SearchInputError(f"{value!r} is not a VK group id (e.g. 1 or club1)")
    return check_group_id(int(text), value)


def check_group_id(group: int, shown: object = None) -> int:
    if isinstance(group, bool) or not isinstance(group, int) or not 0 < group < MAX_GROUP_ID:
        raise SearchInputError(
            f"{shown if shown is not None else group!r} is not a VK group id "
            f"(1 to {MAX_GROUP_ID - 1:,})"
        )
    return group


def check_query(query: str) -> str:
    if not isinstance(query, str):
        raise SearchInputError(f"the query must be text, not {type(query).__name__}")
    if "\x00" in query:
        raise SearchInputError("the query contains a NUL character")
    if not query.strip():
        raise SearchInputError("the query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise SearchInputError(
            f"the query is {len(query):,} characters long; at most {MAX_QUERY_CHARS:,}"
        )
    words = len(_WORD.findall(query))
    if words > MAX_QUERY_WORDS:
        raise SearchInputError(
            f"the query has {words:,} words and operators; at most {MAX_QUERY_WORDS}"
        )
    return query


def _check_text(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SearchInputError(f"{name} must be text, not {type(value).__name__}")
    if "\x00" in value:
        raise SearchInputError(f"{name} contains a NUL character")
    if len(value) > MAX_NAME_CHARS:
        raise SearchInputError(
            f"{name} is {len(value):,} characters long; at most {MAX_NAME_CHARS:,}"
        )
    return value


def _check_moment(value: datetime | None, name: str) -> datetime | None:
    if value is not None and not isinstance(value, datetime):
        raise SearchInputError(f"{name} must be a datetime, not {type(value).__name__}")
    return value


# -- the search -------------------------------------------------------------------------------


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
    rank_limit: int = DEFAULT_RANK_LIMIT,
    include_deleted: bool = False,
) -> list[dict[str, Any]]:
    """One page of results as dicts (the SQL function's columns), best or newest first."""
    check_query(query)
    groups = list(group_ids or [])
    if len(groups) > MAX_GROUP_FILTERS:
        raise SearchInputError(
            f"{len(groups):,} groups to search in; at most {MAX_GROUP_FILTERS:,}"
        )
    for g in groups:
        check_group_id(g)
    if isinstance(lim, bool) or not isinstance(lim, int) or not 1 <= lim <= MAX_RESULTS:
        raise SearchInputError(f"lim: {lim!r} is not a number from 1 to {MAX_RESULTS:,}")
    if order not in ORDERS:
        raise SearchInputError(f"order: {order!r} is not one of {', '.join(ORDERS)}")
    if isinstance(rank_limit, bool) or not isinstance(rank_limit, int) or rank_limit < 0:
        raise SearchInputError(f"rank_limit: {rank_limit!r} is not a number of rows")
    params = {
        "q": query,
        "groups": groups or None,
        "since": _check_moment(since, "since"),
        "until": _check_moment(until, "until"),
        "lim": lim,
        "after": _check_text(after, "the cursor"),
        "deleted": bool(include_deleted),
        "list": _check_text(list_name, "the list name"),
        "order": order,
        "rank_limit": min(rank_limit, 2**31 - 2),  # the function adds 1 to an integer
        "headline": HEADLINE,
    }
    function = sql.Identifier(postgres.schema_name, "search_posts" if posts else "search_comments")
    stmt = sql.SQL(
        "SELECT * FROM {}(%(q)s, group_ids => %(groups)s::bigint[], since => %(since)s,"
        " until => %(until)s, lim => %(lim)s, after => %(after)s,"
        " include_deleted => %(deleted)s, list_name => %(list)s, order_by => %(order)s,"
        " rank_limit => %(rank_limit)s, headline_options => %(headline)s)"
    ).format(function)
    error: SearchError | None = None
    with postgres.connection() as conn, conn.cursor() as cur:
        try:
            cur.execute(f"SET LOCAL statement_timeout = {int(STATEMENT_TIMEOUT_MS)}")
            cur.execute(stmt, params)
            names = [d.name for d in cur.description or []]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            return _with_authors(cur, postgres.schema_name, rows)
        except psycopg.Error as exc:
            error = _search_error(exc)
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
    # Raised outside the except block: no psycopg exception is chained to what callers see.
    raise error


def profile_url(author_id: int) -> str:
    """VK's address of a user (id) or a community (minus its id) when no screen name is known."""
    return f"https://vk.com/id{author_id}" if author_id > 0 else f"https://vk.com/club{-author_id}"


def _with_authors(cur: Any, schema: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with `author_name` and `author_url` from the `authors` table (one lookup)."""
    ids = sorted({int(r["from_id"]) for r in rows if r.get("from_id")})
    known: dict[int, tuple[str | None, str]] = {}
    if ids:
        cur.execute(
            sql.SQL("SELECT id, name, url FROM {} WHERE id = ANY(%s)").format(
                sql.Identifier(schema, "authors")
            ),
            (ids,),
        )
        known = {int(i): (name, url) for i, name, url in cur.fetchall()}
    for r in rows:
        author = r.get("from_id")
        name, url = (
            known.get(int(author), (None, profile_url(int(author)))) if author else (None, None)
        )
        r["author_name"], r["author_url"] = name, url
    return rows


def _search_error(exc: psycopg.Error) -> SearchError:
    diag = exc.diag
    if isinstance(exc, psycopg.errors.InvalidParameterValue):  # bad cursor, unknown list, ...
        hint = f" ({diag.message_hint})" if diag.message_hint else ""
        return SearchInputError(f"{diag.message_primary}{hint}")
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return SearchError(
            f"the search took longer than {STATEMENT_TIMEOUT_MS // 1000} s and was cancelled; "
            "narrow it (--group, --list, --since) or use fewer OR alternatives"
        )
    if isinstance(exc, psycopg.errors.ProgramLimitExceeded | psycopg.errors.StatementTooComplex):
        return SearchInputError("the query is too complex for the database; use fewer words")
    if isinstance(exc, psycopg.OperationalError):
        return SearchError("the database connection was lost during the search; try again")
    return SearchError(f"the database refused the search (SQLSTATE {diag.sqlstate or '?'})")


# -- results ----------------------------------------------------------------------------------


def snippet_text(snippet: str | None, bold: bool) -> str:
    text = " ".join((snippet or "").split())  # newlines and tabs of VK texts on one line
    on, off = ("\x1b[1m", "\x1b[0m") if bold else ("**", "**")
    return text.replace(MARK_ON, on).replace(MARK_OFF, off)


def snippet_html(snippet: str | None) -> str:
    return html.escape(snippet or "").replace(MARK_ON, "<b>").replace(MARK_OFF, "</b>")


def as_json(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in ("snippet", "cursor")}
    out["date"] = row["date"].isoformat() if row["date"] else None
    text = " ".join((row["snippet"] or "").split())
    out["snippet"] = text.replace(MARK_ON, "").replace(MARK_OFF, "")
    out["snippet_html"] = snippet_html(row["snippet"])
    out["cursor"] = row["cursor"]
    return out


def _author(row: dict[str, Any]) -> str:
    name, url = row.get("author_name"), row.get("author_url")
    if url is None:
        return str(row["from_id"])
    return f"{name} ({url})" if name else url


def text_lines(rows: list[dict[str, Any]], posts: bool, bold: bool) -> list[str]:
    """Two lines per hit: where and when, then the snippet."""
    lines = []
    for n, r in enumerate(rows, 1):
        when = r["date"].astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if r["date"] else "?"
        flags = " [deleted]" if r["is_deleted"] else ""
        if posts and r.get("is_pinned"):
            flags += " [pinned]"
        lines.append(
            f"{n}. group {r['group_id']}  {r['url']}  {when}  author {_author(r)}"
            f"  rank {r['rank']:.4f}{flags}"
        )
        lines.append(f"   {snippet_text(r['snippet'], bold)}")
    return lines
