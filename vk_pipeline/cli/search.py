"""`python -m vk_pipeline search кофе -чай [--group ID] [--list NAME] [--since DATE] ...`

Parses the arguments and prints; validation, limits and the SQL live in `vk_pipeline.search`,
so a Python caller gets the same checks.
"""

from __future__ import annotations

import json
import os

import click

from vk_pipeline import search as api
from vk_pipeline.cli.common import EXIT_OK, EXIT_UNAVAILABLE, CliError, Session, one_line
from vk_pipeline.cli.inputs import WordsCommand
from vk_pipeline.storage import DatabaseUnreachableError


def _group_id(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[int]:
    return [api.parse_group_id(v) for v in values]


def _limit(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= api.MAX_RESULTS:
        raise api.SearchInputError(
            f"--limit: {value!r} is not a number from 1 to {api.MAX_RESULTS:,}"
        )
    return int(value)


@click.command(cls=WordsCommand)
@click.argument("query", nargs=-1, required=True, metavar="QUERY...")
@click.option("--group", "-g", "groups", multiple=True, metavar="ID", callback=_group_id,
              help="Only this group (repeatable): 123, -123 or club123.")  # fmt: skip
@click.option(
    "--list", "-l", "list_name", metavar="NAME", help="Only the groups of this group list."
)
@click.option("--since", metavar="DATE", help="From this date or time (UTC unless it says).")
@click.option("--until", metavar="DATE", help="Up to this date (inclusive) or time.")
@click.option("--posts", is_flag=True, help="Search posts instead of comments.")
@click.option("--limit", "-n", default="20", metavar="N", callback=_limit,
              help=f"Results per page (default 20, at most {api.MAX_RESULTS:,}).")  # fmt: skip
@click.option("--after", metavar="CURSOR", help="The next page: a cursor printed before.")
@click.option("--order", type=click.Choice(api.ORDERS), default="auto",
              help="rank: best first; date: newest first; auto: rank unless more than "
              f"{api.DEFAULT_RANK_LIMIT:,} match.")  # fmt: skip
@click.option("--rank-limit", type=int, default=api.DEFAULT_RANK_LIMIT, hidden=True)
@click.option("--deleted", is_flag=True, help="Include deleted posts and comments.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--database-url", metavar="URL",
              help="Default: $DATABASE_URL, the local setup's, else the embedded server.")  # fmt: skip
@click.pass_obj
def search(
    session: Session,
    query: tuple[str, ...],
    groups: list[int],
    list_name: str | None,
    since: str | None,
    until: str | None,
    posts: bool,
    limit: int,
    after: str | None,
    order: str,
    rank_limit: int,
    deleted: bool,
    as_json: bool,
    database_url: str | None,
) -> int:
    """Search stored VK comments (or posts) in Russian.

    Words match in any form (кошка finds кошки); "a phrase", -word and OR work as in web search
    engines. The words of QUERY may be given separately or quoted as one; a word that starts
    with - excludes it. Options are recognized only as spelled below (`-n 5`, `--limit=5`).

    \b
    Examples:
      python -m vk_pipeline search кофе -чай
      python -m vk_pipeline search '"хороший кофе"' --group 100001 --since 2024-03-01
      python -m vk_pipeline search "кофе OR чай" --list кофейни --posts --json
      python -m vk_pipeline search -чай кофе -n 50
    """
    text = " ".join(query)
    api.check_query(text)
    start = api.parse_when(since, "--since") if since else None
    end = api.parse_when(until, "--until", end_of_day=True) if until else None
    session.database_url = database_url
    try:
        rows = api.search(
            session.postgres(),
            text,
            posts=posts,
            group_ids=groups,
            list_name=list_name,
            since=start,
            until=end,
            lim=limit,
            after=after,
            order=order,
            rank_limit=rank_limit,
            include_deleted=deleted,
        )
    except DatabaseUnreachableError as exc:
        if not database_url:
            raise
        error = CliError(f"--database-url: {one_line(str(exc))}", EXIT_UNAVAILABLE)
    else:
        error = None
    if error is not None:
        raise error
    next_cursor = rows[-1]["cursor"] if len(rows) == limit else None
    if as_json:
        body = {"results": [api.as_json(r) for r in rows], "next_cursor": next_cursor}
        click.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not rows:
        click.echo("no results")
        return EXIT_OK
    out = click.get_text_stream("stdout")
    bold = out.isatty() and os.environ.get("NO_COLOR") is None
    for line in api.text_lines(rows, posts, bold):
        click.echo(line)
    order_used = rows[0]["ordered_by"]
    summary = f"\n{len(rows)} result(s), {'best first' if order_used == 'rank' else 'newest first'}"
    if next_cursor:
        summary += f"; next page: --after {next_cursor}"
    click.echo(summary)
    return EXIT_OK
