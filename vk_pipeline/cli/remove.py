"""`python -m vk_pipeline groups remove`: stop tracking exactly what was named, nothing else.

`groups remove football_perm` once removed group 100002: the key `football_perm` had been typed
into the UI's "add partition" box, and the command, not looking at the partitions, resolved the
word as a screen name through VK, which (rightly) answered with the community that has that
address. So an argument is first matched against the partition keys as typed, byte for byte:
a key is removed as the key it is, whatever else the word could mean. Only an argument that is no
key is read as a community (an id, a link, a screen name); a name is looked up where we recorded
it first (registered groups, stored groups) and asked of VK only when we never saw it, and VK's
answer counts only when it has exactly that address (VK answers a former address with the
community under its new one). Anything unknown, ambiguous or unreadable refuses the whole
command: nothing is removed. What will go is shown first and confirmed (or `--yes`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import click
from psycopg import sql

from vk_pipeline.cli.common import (
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_USAGE,
    CliError,
    Session,
    shown,
)
from vk_pipeline.cli.inputs import WordsCommand, looks_like_path
from vk_pipeline.grouplists import GroupInfo, Ref, load, parse_token, resolve
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME, is_group_key


@dataclass(frozen=True)
class Target:
    """One partition key to delete (`group_id` None: a key that is no group id)."""

    key: str
    group_id: int | None
    screen_name: str | None = None
    name: str | None = None


@dataclass
class Plan:
    targets: dict[str, Target] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (argument's position, line)
    notes: list[str] = field(default_factory=list)
    position: int = 0  # of the argument being read

    def add(self, target: Target) -> None:
        self.targets.setdefault(target.key, target)

    def error(self, message: str, position: int | None = None) -> None:
        self.problems.append((self.position if position is None else position, message))

    @property
    def errors(self) -> list[str]:
        """In the order of the arguments, whether found at once or after asking VK."""
        return [m for _, m in sorted(self.problems, key=lambda p: p[0])]


class Known:
    """The communities we recorded, by id and by lower-cased screen name: registered groups,
    and groups the `groups` asset stored for the tracked partitions."""

    def __init__(self, session: Session, keys: list[str]) -> None:
        self.info: dict[int, GroupInfo] = {}
        self.registered: set[int] = set()
        # Names from both records: when they disagree (VK gave an address to another community
        # since we recorded it), the name is ambiguous rather than silently one of them.
        self.by_name: dict[str, set[int]] = {}
        for g in session.registry().registered():
            self.registered.add(g.group_id)
            self._know(GroupInfo(g.group_id, g.screen_name, g.name, g.deactivated))
        ids = [int(k) for k in keys if is_group_key(k)]
        postgres = session.postgres()
        stored = postgres.execute(
            sql.SQL("SELECT id, screen_name, name, deactivated FROM {} WHERE id = ANY(%s)").format(
                sql.Identifier(postgres.schema_name, "groups")
            ),
            (ids,),
        )
        for gid, screen_name, name, deactivated in stored:
            self._know(GroupInfo(gid, screen_name, name, deactivated))

    def _know(self, info: GroupInfo) -> None:
        self.info.setdefault(info.id, info)
        if info.screen_name:
            self.by_name.setdefault(info.screen_name.lower(), set()).add(info.id)


def plan_removal(session: Session, items: Iterable[str]) -> Plan:
    keys = session.partition_keys()
    keyset = set(keys)
    known = Known(session, keys)
    plan = Plan()
    names: list[tuple[int, str, str]] = []  # (position, label, lower-cased screen name)
    for plan.position, item in enumerate(items):
        if item in keyset:
            _exact_key(item, known, plan)
        elif item and Path(item).expanduser().is_file():
            _file(item, plan, names)
        elif item and Path(item).expanduser().is_dir():
            plan.error(f"{shown(item)}: is a folder; name the files in it")
        else:
            _reference(item, item, plan, names)
    for position, label, name in names:
        ids = sorted(known.by_name.get(name, ()))
        if len(ids) > 1:
            plan.error(
                f"{shown(label)}: the address {name!r} names groups {', '.join(map(str, ids))}; "
                "remove the one you mean by its id",
                position,
            )
        elif ids:
            plan.add(_group(ids[0], known))
    asked = [n for n in names if n[2] not in known.by_name]
    if asked:
        _ask_vk(session, asked, known, plan)
    for target in list(plan.targets.values()):
        gid = target.group_id
        if gid is not None and target.key not in keyset and gid not in known.registered:
            del plan.targets[target.key]
            plan.notes.append(f"group {gid} is not tracked; nothing to remove for it")
    return plan


def _exact_key(item: str, known: Known, plan: Plan) -> None:
    if Path(item).expanduser().is_file():
        plan.error(
            f"{shown(item)}: is both a partition key and a file; write ./{item} for the file"
        )
        return
    if is_group_key(item):
        plan.add(_group(int(item), known))
        return
    plan.add(Target(item, None))
    # Say what the word would also have meant, and that it stays.
    ref = parse_token(item).ref if item.isprintable() else None
    other = None
    if ref is not None and ref.kind == "id":
        other = int(ref.value)
    elif ref is not None and len(known.by_name.get(str(ref.value), ())) == 1:
        [other] = known.by_name[str(ref.value)]
    if other is not None and other in known.info:
        info = known.info[other]
        plan.notes.append(
            f"{shown(item)} is removed as the partition key it is; group {other}"
            f"{' (' + info.screen_name + ')' if info.screen_name else ''} is not touched"
        )


def _file(item: str, plan: Plan, names: list[tuple[int, str, str]]) -> None:
    parsed = load(Path(item).expanduser())
    if parsed.file_error:
        plan.error(f"{shown(item)}: not read: {parsed.file_error}")
        return
    for r in parsed.rejections:
        plan.error(f"{shown(item)}:{r.line}: {r.reason}")
    for e in parsed.entries:
        _ref(f"{item}:{e.line}", e.ref, plan, names)


def _reference(label: str, item: str, plan: Plan, names: list[tuple[int, str, str]]) -> None:
    if looks_like_path(item):
        plan.error(f"{shown(item)}: no such file (and no partition key of that name)")
        return
    parsed = parse_token(item) if item.strip() == item and item else None
    if parsed is None or parsed.ref is None:
        reason = parsed.reason if parsed is not None else "is not a community address"
        plan.error(f"{shown(item)}: no partition key of that name, and {reason}")
        return
    _ref(label, parsed.ref, plan, names)


def _ref(label: str, ref: Ref, plan: Plan, names: list[tuple[int, str, str]]) -> None:
    if ref.kind == "id":
        plan.add(Target(str(ref.value), int(ref.value)))
    else:
        names.append((plan.position, label, str(ref.value)))


def _group(gid: int, known: Known) -> Target:
    info = known.info.get(gid)
    return Target(str(gid), gid, info.screen_name if info else None, info.name if info else None)


def _ask_vk(session: Session, asked: list[tuple[int, str, str]], known: Known, plan: Plan) -> None:
    with session.vk_client() as client:
        resolution = resolve(client, [Ref("name", n) for _, _, n in asked])
    for position, label, name in asked:
        plan.position = position
        info = resolution.found.get(Ref("name", name))
        if info is None:
            reason = resolution.missing.get(Ref("name", name), "VK did not answer for it")
            plan.error(f"{shown(label)}: no partition key of that name, and {reason}")
        elif (info.screen_name or "").lower() != name:
            plan.error(
                f"{shown(label)}: VK answers this address with group {info.id} "
                f"(now {info.screen_name or 'without an address'}); remove it by its id if you "
                "mean that group"
            )
        else:
            known.info.setdefault(info.id, info)
            plan.add(_group(info.id, known))


def _describe(t: Target) -> str:
    if t.group_id is None:
        return f"  {shown(t.key)}\tpartition key that is not a group id"
    return f"  {t.group_id}\t{t.screen_name or '-'}\t{shown(t.name) if t.name else '-'}"


@click.command(cls=WordsCommand)
@click.argument("items", nargs=-1, required=True, metavar="KEY|FILE|NAME...")
@click.option(
    "--yes", "-y", is_flag=True, help="Remove without asking (needed when not on a terminal)."
)
@click.pass_obj
def remove(session: Session, items: tuple[str, ...], yes: bool) -> int:
    """Stop tracking groups: their partitions go, their rows in groups, posts and comments stay.

    An argument that is exactly a partition key removes that key (also one that is not a group
    id, such as a word typed into the UI); otherwise it is read as a community: an id, a link,
    a screen name, or a file of them. Everything is resolved before anything is removed: an
    unknown or ambiguous name removes nothing. Shows what will be removed and asks first.

    \b
    Examples:
      python -m vk_pipeline groups remove 123 club456 vk.com/zerno_coffee
      python -m vk_pipeline groups remove --yes football_perm   # a key typed in the UI
      python -m vk_pipeline groups remove -5   # the key "-5" if there is one, else group 5
    """
    plan = plan_removal(session, items)
    for note in plan.notes:
        click.echo(f"note: {note}", err=True)
    if plan.errors:
        raise CliError([*plan.errors, "nothing was removed"], EXIT_REJECTED)
    if not plan.targets:
        click.echo("nothing to remove")
        return EXIT_OK
    targets = list(plan.targets.values())
    click.echo(f"to stop tracking ({len(targets)}):")
    for t in targets:
        click.echo(_describe(t))
    if not yes:
        if not click.get_text_stream("stdin").isatty():
            raise CliError(
                "stdin is not a terminal, so there is no one to ask: add --yes to remove these",
                EXIT_USAGE,
            )
        if not click.confirm("Remove them?", default=False):
            click.echo("nothing was removed")
            return EXIT_REJECTED
    instance = session.instance()
    keys = set(session.partition_keys())
    for t in targets:
        if t.key in keys:
            session.dagster(
                lambda k=t.key: instance.delete_dynamic_partition(GROUP_PARTITIONS_NAME, k)
            )
    ids = [t.group_id for t in targets if t.group_id is not None]
    session.registry().mark_removed(ids)
    invalid = len(targets) - len(ids)
    click.echo(
        f"stopped tracking {len(ids)} group(s)"
        + (f", removed {invalid} partition key(s) that are not group ids" if invalid else "")
        + "; their rows in groups, posts and comments stay"
    )
    return EXIT_OK
