"""What the upsert keeps of a change: revision rows and counter snapshots, per table.

A table listed here has its upsert (and its update-only path) extended by data-modifying CTEs:
``o`` reads the stored rows the chunk touches (in the statement's snapshot, so before the
change), ``w`` is the write itself returning the new values, and one INSERT per spec appends
what changed. One statement, hence one transaction with the change: a crash never leaves a
change without its revision or the reverse. A rerun writes nothing, since an unchanged row is
not returned by ``w``. Times are ``clock_timestamp()``, not the transaction's ``now()``, so two
changes of one row inside one transaction (a caller's outer transaction) stay two revisions.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql


@dataclass(frozen=True)
class Revisions:
    """Previous versions of rows whose watched values or deletion flag change.

    ``watched``: name → SQL expression over the target row ``t``, compared old vs new and kept
    in the revision; ``context``: name → expression kept from the old row, not compared.
    """

    table: str
    watched: dict[str, str]
    context: dict[str, str]
    deleted: str = "is_deleted"


@dataclass(frozen=True)
class Snapshots:
    """Values appended with the time observed when a row is new or they changed.

    ``key`` / ``values``: snapshot column → SQL expression over the target row ``t``.
    Rows whose values are all NULL (e.g. a community VK did not return) are not snapshotted.
    """

    table: str
    key: dict[str, str]
    values: dict[str, str]


@dataclass(frozen=True)
class History:
    revisions: Revisions | None = None
    snapshots: Snapshots | None = None

    def expressions(self) -> dict[str, str]:
        """Every value the CTEs need from a row, old or new, by name. A name that is also a
        primary-key column must be that column (the key is returned under its own name)."""
        out: dict[str, str] = {}
        if self.revisions:
            out.update(self.revisions.watched)
            out.update(self.revisions.context)
            out[self.revisions.deleted] = f"t.{self.revisions.deleted}"
            out["first_seen_at"] = "t.first_seen_at"
        if self.snapshots:
            out.update(self.snapshots.key)
            out.update(self.snapshots.values)
        return out


HISTORY: dict[str, History] = {
    "comments": History(
        revisions=Revisions(
            "comment_revisions",
            watched={
                "text": "t.text",
                "attachment_types": "t.attachment_types",
                "attachments": "t.raw -> 'attachments'",
            },
            context={"group_id": "t.group_id", "post_id": "t.post_id", "from_id": "t.from_id"},
        )
    ),
    "posts": History(
        revisions=Revisions(
            "post_revisions",
            watched={
                "text": "t.text",
                "attachment_types": "t.attachment_types",
                "attachments": "t.raw -> 'attachments'",
            },
            context={"group_id": "t.group_id", "from_id": "t.from_id", "edited": "t.edited"},
        ),
        snapshots=Snapshots(
            "post_counters",
            key={"owner_id": "t.owner_id", "post_id": "t.id", "group_id": "t.group_id"},
            values={
                "views": "t.views_count",
                "likes": "t.likes_count",
                "reposts": "t.reposts_count",
                "comments": "t.comments_count",
            },
        ),
    ),
    "groups": History(
        snapshots=Snapshots(
            "group_counters",
            key={"group_id": "t.id"},
            values={"members_count": "t.members_count", "counters": "t.raw -> 'counters'"},
        )
    ),
}


def _cols(alias: str, names: list[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(alias, n) for n in names)


def _row_differs(names: list[str]) -> sql.Composable:
    return sql.SQL("ROW({}) IS DISTINCT FROM ROW({})").format(_cols("o", names), _cols("n", names))


def returning(history: History, pk: list[str]) -> sql.Composable:
    """The extra RETURNING list of the write: key and needed values of the new rows."""
    exprs = {n: e for n, e in history.expressions().items() if n not in pk}
    parts = [sql.Identifier("t", c) for c in pk]
    parts += [sql.SQL("{} AS {}").format(sql.SQL(e), sql.Identifier(n)) for n, e in exprs.items()]
    return sql.SQL(", ").join(parts)


def old_rows(
    history: History, pk: list[str], target: sql.Composable, stage: sql.Composable
) -> sql.Composable:
    """``o``: the stored versions of the staged keys, read before the write."""
    exprs = {n: e for n, e in history.expressions().items() if n not in pk}
    items = [sql.Identifier("t", c) for c in pk]
    items += [sql.SQL("{} AS {}").format(sql.SQL(e), sql.Identifier(n)) for n, e in exprs.items()]
    match = sql.SQL(" AND ").join(sql.SQL("t.{0} = s.{0}").format(sql.Identifier(c)) for c in pk)
    return sql.SQL("SELECT {} FROM {} t JOIN {} s ON {}").format(
        sql.SQL(", ").join(items), target, stage, match
    )


def history_ctes(
    history: History,
    pk: list[str],
    schema: str,
    write: str = "w",
    observed_at: sql.Composable | None = None,
) -> list[tuple[str, sql.Composable]]:
    """Named CTEs that append revisions/snapshots from ``o`` (old) and ``write`` (new).

    ``observed_at``: the snapshots' time, when the writer knows when the values were read in
    the source's clock (a crawl ``as_of``); else the database clock."""
    ctes: list[tuple[str, sql.Composable]] = []
    join = sql.SQL(" AND ").join(sql.SQL("o.{0} = n.{0}").format(sql.Identifier(c)) for c in pk)
    w = sql.Identifier(write)
    rev = history.revisions
    if rev is not None:
        watched = list(rev.watched)
        kept = [*rev.context, *watched]
        flag = sql.Identifier(rev.deleted)
        target = sql.Identifier(schema, rev.table)
        key_match = sql.SQL(" AND ").join(
            sql.SQL("r.{0} = o.{0}").format(sql.Identifier(c)) for c in pk
        )
        stmt = sql.SQL(
            "INSERT INTO {target} ({pk}, valid_to, valid_from, kind, was_deleted, {kept})"
            " SELECT {opk}, clock_timestamp(),"
            " coalesce((SELECT max(r.valid_to) FROM {target} r WHERE {key_match}),"
            " o.first_seen_at),"
            " CASE WHEN n.{flag} AND NOT o.{flag} THEN 'deleted'"
            " WHEN o.{flag} AND NOT n.{flag} THEN 'restored' ELSE 'edited' END,"
            " o.{flag}, {okept}"
            " FROM {w} n JOIN o ON {join}"
            " WHERE o.{flag} IS DISTINCT FROM n.{flag} OR {differs}"
            " ON CONFLICT DO NOTHING"
        ).format(
            target=target,
            pk=sql.SQL(", ").join(map(sql.Identifier, pk)),
            kept=sql.SQL(", ").join(map(sql.Identifier, kept)),
            opk=_cols("o", pk),
            key_match=key_match,
            flag=flag,
            okept=_cols("o", kept),
            w=w,
            join=join,
            differs=_row_differs(watched),
        )
        ctes.append(("h_revisions", stmt))
    snap = history.snapshots
    if snap is not None:
        values = list(snap.values)
        stmt = sql.SQL(
            "INSERT INTO {target} ({keys}, observed_at, {vals})"
            " SELECT {kexprs}, {observed_at}, {nvals}"
            " FROM {w} n LEFT JOIN o ON {join}"
            " WHERE num_nonnulls({nvals}) > 0 AND (o.{pk0} IS NULL OR {differs})"
            " ON CONFLICT DO NOTHING"
        ).format(
            target=sql.Identifier(schema, snap.table),
            keys=sql.SQL(", ").join(map(sql.Identifier, snap.key)),
            vals=sql.SQL(", ").join(map(sql.Identifier, values)),
            kexprs=_cols("n", list(snap.key)),
            observed_at=observed_at if observed_at is not None else sql.SQL("clock_timestamp()"),
            nvals=_cols("n", values),
            w=w,
            join=join,
            pk0=sql.Identifier(pk[0]),
            differs=_row_differs(values),
        )
        ctes.append(("h_snapshots", stmt))
    return ctes
