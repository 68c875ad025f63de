"""Reading the command line's free words: files or typed names, and words that start with `-`.

Shared by the commands that take group references, files or a query, so `groups add -5`,
`groups remove -5` and `search -чай кофе` read the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from vk_pipeline.cli.common import CliError, shown
from vk_pipeline.grouplists import parse_token

# Names that end like a group-list file are files the user meant, even when they do not exist:
# `groups add coffee.csv` must not ask VK for a community called "coffee.csv".
FILE_SUFFIXES = frozenset(
    [
        ".txt",
        ".text",
        ".csv",
        ".tsv",
        ".tab",
        ".lst",
        ".list",
        ".xlsx",
        ".xlsm",
        ".xls",
        ".ods",
        ".json",
        ".pdf",
        ".png",
        ".jpg",
    ]
)


class WordsCommand(click.Command):
    """Options count only when spelled exactly (`--limit 5`, `--limit=5`, `-n 5`); every other
    word is an argument, also one that starts with `-`: `search кофе -чай`, `groups remove -5`
    (VK writes a community as the wall owner -5). `--` still ends the options."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value: dict[str, bool] = {}
        for param in self.get_params(ctx):
            if isinstance(param, click.Option):
                for name in (*param.opts, *param.secondary_opts):
                    takes_value[name] = not (param.is_flag or param.count)
        options: list[str] = []
        words: list[str] = []
        rest = iter(args)
        for arg in rest:
            if arg == "--":
                words.extend(rest)
                break
            name, eq, _ = arg.partition("=") if arg.startswith("--") else (arg, "", "")
            if name in takes_value:
                options.append(arg)
                if takes_value[name] and not eq:
                    value = next(rest, None)  # the option's value, whatever it looks like
                    if value is not None:
                        options.append(value)
            elif arg.startswith("--") and len(arg) > 2:
                options.append(arg)  # an unknown long option: click's error names it
            else:
                words.append(arg)
        return super().parse_args(ctx, [*options, "--", *words])


def looks_like_path(item: str) -> bool:
    """A file the user named, existing or not (`vk.com/club1` is a link, not a path)."""
    if item.startswith(("/", "./", "../", "~", ".\\")):
        return True
    if Path(item).suffix.lower() in FILE_SUFFIXES:
        return True
    return ("/" in item or "\\" in item) and not parse_token(item).strong


def missing_files(items: Sequence[str], *, all_files: bool) -> list[str]:
    """One error line per argument meant as a file that is not one."""
    errors = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_file():
            continue
        if path.is_dir():
            errors.append(f"{shown(item)}: is a folder; name the files in it")
        elif all_files or looks_like_path(item):
            errors.append(f"{shown(item)}: no such file")
    return errors


def require_files(items: Sequence[str], *, all_files: bool = False) -> None:
    if errors := missing_files(items, all_files=all_files):
        raise CliError(errors)
