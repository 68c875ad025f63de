"""`python -m vk_pipeline`: one command group for everything a person runs against the pipeline.

Subcommands live in modules of their own (`groups.py`, `search.py`) and are listed in
`COMMANDS`; a new one (`tokens.py` with a `tokens` click group, say) is one import and one entry.
What every command shares is here and in `common.py`: the local setup found on its own
(`$VK_PIPELINE_HOME/setup.env`, written by `make dev` / `make demo`; the environment wins), one
line per error on stderr (`--debug` shows the traceback instead), and the exit codes:
0 done, 1 something named was rejected or refused, 2 bad input, 3 a service the command needs is
unavailable, 70 a bug.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import click

from vk_pipeline import local
from vk_pipeline.cli.common import (
    ENV_DEBUG,
    EXIT_INTERNAL,
    PROG,
    CliError,
    Session,
    describe,
    one_line,
)
from vk_pipeline.cli.groups import groups
from vk_pipeline.cli.search import search
from vk_pipeline.cli.tokens import tokens

COMMANDS: tuple[click.Command, ...] = (groups, search, tokens)


class Program(click.Group):
    """The top group: sets up the session around every command and reports errors in one line."""

    def invoke(self, ctx: click.Context) -> Any:
        session: Session = ctx.ensure_object(Session)
        setup = local.SetupFile.read()
        with (
            local.setup_environment(setup) as used,
            contextlib.closing(session),
            _quiet_libraries(bool(ctx.params.get("debug"))),
        ):
            session.setup, session.from_setup = setup, used
            return super().invoke(ctx)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        code = run(self, argv, PROG, **extra)  # what users type, whoever calls
        if standalone_mode:
            sys.exit(code)
        return code


@contextlib.contextmanager
def _quiet_libraries(debug: bool) -> Iterator[None]:
    """Libraries log retries and warnings on the root logger in several lines each (dagster-
    postgres: five "Retrying failed database connection" before it gives up); a command says
    what went wrong in one line, so only errors pass (all of it with --debug)."""
    root = logging.getLogger()
    level = root.level
    if not debug:
        root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def _debug(argv: list[str]) -> bool:
    """--debug given before the subcommand (or VK_PIPELINE_DEBUG set): errors are re-raised."""
    for arg in argv:
        if arg == "--debug":
            return True
        if not arg.startswith("-"):
            break
    return os.environ.get(ENV_DEBUG, "") not in ("", "0")


def run(group: click.Group, argv: list[str], prog_name: str, **extra: Any) -> int:
    debug = _debug(argv)
    try:
        rv = click.Group.main(group, argv, prog_name, standalone_mode=False, **extra)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else prog_name
        click.echo(f"error: {one_line(exc.format_message())} (see {where} --help)", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"error: {one_line(exc.format_message())}", err=True)
        return exc.exit_code
    except click.Abort:
        click.echo("error: aborted", err=True)
        return 1
    except Exception as exc:
        if debug and not isinstance(exc, CliError):
            raise
        lines, code = describe(exc)
        for line in lines:
            click.echo(f"error: {line}", err=True)
        if debug:  # a CliError under --debug: the message, then where it came from
            raise
        return code
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        return 130
    return rv if isinstance(rv, int) else 0


@click.group(cls=Program, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, envvar=ENV_DEBUG,
              help="Show the traceback of an error instead of its one line.")  # fmt: skip
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Register VK communities and search what the pipeline stored.

    Finds the running `make dev` on its own (through $VK_PIPELINE_HOME/setup.env, default
    .local/setup.env); variables set in the environment (DATABASE_URL, DAGSTER_HOME,
    VK_API_BASE_URL, VK_ACCESS_TOKEN(S)) take precedence.

    \b
    Examples:
      python -m vk_pipeline groups list
      python -m vk_pipeline groups add coffee.csv @zerno_coffee
      python -m vk_pipeline search кофе -чай
    """
    ctx.ensure_object(Session).debug = debug


for _command in COMMANDS:
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m vk_pipeline ...`: the exit code (errors already printed)."""
    return cli.main(argv, standalone_mode=False)


__all__ = ["COMMANDS", "EXIT_INTERNAL", "cli", "main"]
