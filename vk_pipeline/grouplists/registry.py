"""The Postgres record of group lists: files read, their outcome, lists, members, registered groups.

Tables come from migration 0002 (`group_lists`, `group_list_members`, `registered_groups`,
`group_files`, `group_file_rejections`, `group_file_paths`). Which groups are tracked right now
is not decided here: callers pass the ids that are Dagster partitions, so this module needs no
Dagster.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from vk_pipeline.grouplists.check import FileReport
from vk_pipeline.grouplists.reader import Rejection
from vk_pipeline.storage import PostgresResource

_FILE_COLUMNS = (
    "sha256",
    "file_name",
    "path",
    "source",
    "list_name",
    "lines_read",
    "groups_found",
    "groups_new",
    "groups_known",
    "groups_deactivated",
    "duplicates",
    "rejected_count",
    "file_error",
    "new_group_ids",
    "reads",
    "run_keys",
    "processed_at",
    "reported_at",
    "format",
    "encoding",
)


@dataclass(frozen=True)
class FileRecord:
    """One read of one file content, as stored."""

    sha256: str
    file_name: str
    path: str | None
    source: str
    list_name: str | None
    lines_read: int
    groups_found: int
    groups_new: int
    groups_known: int
    groups_deactivated: int
    duplicates: int
    rejected_count: int
    file_error: str | None
    new_group_ids: list[int]
    reads: int
    run_keys: list[str] | None
    processed_at: datetime
    reported_at: datetime | None
    format: str | None
    encoding: str | None


@dataclass(frozen=True)
class RegisteredGroup:
    group_id: int
    screen_name: str | None
    name: str | None
    deactivated: str | None
    registered_at: datetime
    removed_at: datetime | None
    lists: list[str]


@dataclass(frozen=True)
class ListSummary:
    name: str
    members: int
    source: str | None
    updated_at: datetime


class GroupRegistry:
    """Reads and writes the group-list tables through a `PostgresResource`."""

    def __init__(self, postgres: PostgresResource) -> None:
        self.postgres = postgres
        self.schema = postgres.schema_name

    def _t(self, table: str) -> sql.Identifier:
        return sql.Identifier(self.schema, table)

    # -- the drop folder's memory ---------------------------------------------------------------

    def known_paths(self) -> dict[str, tuple[int, int, str]]:
        """path -> (size, mtime_ns, sha256) as last seen."""
        rows = self.postgres.execute(
            sql.SQL("SELECT path, size_bytes, mtime_ns, sha256 FROM {}").format(
                self._t("group_file_paths")
            )
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def remember_paths(self, seen: Iterable[tuple[str, int, int, str]]) -> None:
        rows = list(seen)
        if not rows:
            return
        with self.postgres.connection() as conn, conn.cursor() as cur:
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (path, size_bytes, mtime_ns, sha256) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (path) DO UPDATE SET size_bytes = EXCLUDED.size_bytes, "
                    "mtime_ns = EXCLUDED.mtime_ns, sha256 = EXCLUDED.sha256, seen_at = now()"
                ).format(self._t("group_file_paths")),
                rows,
            )

    def forget_paths(self, keep: Collection[str]) -> None:
        """Drop remembered paths of files no longer in the folder."""
        self.postgres.execute(
            sql.SQL("DELETE FROM {} WHERE NOT (path = ANY(%s))").format(
                self._t("group_file_paths")
            ),
            (list(keep),),
        )

    def known_contents(self, shas: Collection[str]) -> dict[str, str]:
        """sha256 -> the file name it was first read under, for contents already read."""
        if not shas:
            return {}
        rows = self.postgres.execute(
            sql.SQL("SELECT sha256, file_name FROM {} WHERE sha256 = ANY(%s)").format(
                self._t("group_files")
            ),
            (list(shas),),
        )
        return {r[0]: r[1] for r in rows}

    # -- recording a read -----------------------------------------------------------------------

    def record(
        self,
        report: FileReport,
        tracked: Collection[int],
        *,
        source: str = "drop",
        path: str | None = None,
        list_name: str | None = "",
    ) -> FileRecord:
        """Store one read file in one transaction: outcome, rejections, list, registered groups.

        New groups are those not in `tracked` (the ids that are partitions now), in file order.
        `list_name=""` names the list after the file; None records no list (names typed on the
        command line). Reading the same content again (the CLI's `add`) updates the record and
        counts the read, so its runs get fresh keys.
        """
        list_name = report.list_name if list_name == "" else list_name
        tracked_set = set(tracked)
        new_ids = [g.id for g in report.groups if g.id not in tracked_set]
        parsed = report.parsed
        values = {
            "sha256": report.sha256,
            "file_name": report.name,
            "path": path,
            "source": source,
            "list_name": list_name,
            "size_bytes": parsed.size,
            "format": parsed.format,
            "encoding": parsed.encoding,
            "lines_read": parsed.lines,
            "groups_found": len(report.groups),
            "groups_new": len(new_ids),
            "groups_known": len(report.groups) - len(new_ids),
            "groups_deactivated": report.deactivated,
            "duplicates": report.duplicates,
            "rejected_count": len(report.rejections),
            "file_error": report.file_error,
            "new_group_ids": new_ids,
        }
        names = list(values)
        update = ", ".join(f"{n} = EXCLUDED.{n}" for n in names if n != "sha256")
        with self.postgres.connection() as conn, conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT (sha256) DO UPDATE SET "
                    + update
                    + ", reads = {t}.reads + 1, processed_at = now(), reported_at = NULL, "
                    "run_keys = NULL RETURNING " + ", ".join(_FILE_COLUMNS)
                ).format(
                    t=self._t("group_files"),
                    cols=sql.SQL(", ").join(map(sql.Identifier, names)),
                    vals=sql.SQL(", ").join(sql.Placeholder() * len(names)),
                ),
                list(values.values()),
            )
            row = cur.fetchone()
            assert row is not None
            self._write_rejections(cur, report.sha256, report.rejections)
            if report.groups:
                self._write_groups(cur, report, new_ids, list_name, path or source)
        return FileRecord(*row)

    def _write_rejections(
        self, cur: psycopg.Cursor[Any], sha: str, rejections: Sequence[Rejection]
    ) -> None:
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE file_sha256 = %s").format(
                self._t("group_file_rejections")
            ),
            (sha,),
        )
        if not rejections:
            return
        copy = sql.SQL(
            "COPY {} (file_sha256, sheet, line, position, text, reason) FROM STDIN"
        ).format(self._t("group_file_rejections"))
        with cur.copy(copy) as out:
            for r in rejections:
                out.write_row((sha, r.sheet, r.line, r.position, r.text, r.reason))

    def _write_groups(
        self,
        cur: psycopg.Cursor[Any],
        report: FileReport,
        new_ids: Sequence[int],
        list_name: str | None,
        source: str,
    ) -> None:
        cur.execute(
            "CREATE TEMP TABLE _gl_found (group_id bigint, screen_name text, name text, "
            "deactivated text, line integer, text text) ON COMMIT DROP"
        )
        with cur.copy(
            "COPY _gl_found (group_id, screen_name, name, deactivated, line, text) FROM STDIN"
        ) as out:
            for g in report.groups:
                i = g.info
                out.write_row((i.id, i.screen_name, i.name, i.deactivated, g.line, g.text))
        cur.execute(
            sql.SQL(
                "INSERT INTO {t} (group_id, screen_name, name, deactivated, registered_by) "
                "SELECT group_id, screen_name, name, deactivated, %s FROM _gl_found "
                "ON CONFLICT (group_id) DO UPDATE SET screen_name = EXCLUDED.screen_name, "
                "name = EXCLUDED.name, deactivated = EXCLUDED.deactivated, updated_at = now(), "
                # A file naming a group that was removed brings it back: that is a new request.
                "removed_at = CASE WHEN {t}.group_id = ANY(%s) THEN NULL ELSE {t}.removed_at END"
            ).format(t=self._t("registered_groups")),
            (report.sha256, list(new_ids)),
        )
        if list_name is None:
            return
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (name, source, file_sha256) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET source = EXCLUDED.source, "
                "file_sha256 = EXCLUDED.file_sha256, updated_at = now()"
            ).format(self._t("group_lists")),
            (list_name, source, report.sha256),
        )
        # The list is the newest version of its file: members it no longer names leave it.
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE list_name = %s").format(self._t("group_list_members")),
            (list_name,),
        )
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (list_name, group_id, line, text) "
                "SELECT %s, group_id, line, text FROM _gl_found"
            ).format(self._t("group_list_members")),
            (list_name,),
        )

    # -- reporting ------------------------------------------------------------------------------

    def unreported(self, limit: int = 200) -> list[FileRecord]:
        rows = self.postgres.execute(
            sql.SQL(
                "SELECT " + ", ".join(_FILE_COLUMNS) + " FROM {} WHERE reported_at IS NULL "
                "ORDER BY processed_at, sha256 LIMIT %s"
            ).format(self._t("group_files")),
            (limit,),
        )
        return [FileRecord(*r) for r in rows]

    def file(self, sha: str) -> FileRecord | None:
        rows = self.postgres.execute(
            sql.SQL("SELECT " + ", ".join(_FILE_COLUMNS) + " FROM {} WHERE sha256 = %s").format(
                self._t("group_files")
            ),
            (sha,),
        )
        return FileRecord(*rows[0]) if rows else None

    def set_run_keys(self, sha: str, run_keys: Sequence[str]) -> None:
        self.postgres.execute(
            sql.SQL("UPDATE {} SET run_keys = %s WHERE sha256 = %s").format(self._t("group_files")),
            (list(run_keys), sha),
        )

    def mark_reported(self, shas: Collection[str]) -> None:
        if not shas:
            return
        self.postgres.execute(
            sql.SQL(
                "UPDATE {} SET reported_at = now() WHERE sha256 = ANY(%s) AND reported_at IS NULL"
            ).format(self._t("group_files")),
            (list(shas),),
        )

    def rejections(self, sha: str, limit: int | None = None) -> list[Rejection]:
        rows = self.postgres.execute(
            sql.SQL(
                "SELECT line, position, text, reason, sheet FROM {} WHERE file_sha256 = %s "
                "ORDER BY sheet, line, position LIMIT %s"
            ).format(self._t("group_file_rejections")),
            (sha, limit),
        )
        return [Rejection(r[0], r[1], r[2] or "", r[3], r[4]) for r in rows]

    # -- groups and lists -----------------------------------------------------------------------

    def registered(self, *, include_removed: bool = False) -> list[RegisteredGroup]:
        rows = self.postgres.execute(
            sql.SQL(
                "SELECT g.group_id, g.screen_name, g.name, g.deactivated, g.registered_at, "
                "g.removed_at, coalesce(array_agg(m.list_name ORDER BY m.list_name) "
                "FILTER (WHERE m.list_name IS NOT NULL), '{{}}') "
                "FROM {g} g LEFT JOIN {m} m ON m.group_id = g.group_id "
                "WHERE %s OR g.removed_at IS NULL "
                "GROUP BY g.group_id ORDER BY g.registered_at, g.group_id"
            ).format(g=self._t("registered_groups"), m=self._t("group_list_members")),
            (include_removed,),
        )
        return [RegisteredGroup(*r) for r in rows]

    def lists(self) -> list[ListSummary]:
        rows = self.postgres.execute(
            sql.SQL(
                "SELECT l.name, count(m.group_id), l.source, l.updated_at FROM {l} l "
                "LEFT JOIN {m} m ON m.list_name = l.name GROUP BY l.name ORDER BY l.name"
            ).format(l=self._t("group_lists"), m=self._t("group_list_members"))
        )
        return [ListSummary(*r) for r in rows]

    def list_members(self, name: str) -> list[int]:
        rows = self.postgres.execute(
            sql.SQL("SELECT group_id FROM {} WHERE list_name = %s ORDER BY line, group_id").format(
                self._t("group_list_members")
            ),
            (name,),
        )
        return [r[0] for r in rows]

    def ids_for_names(self, names: Collection[str]) -> dict[str, int]:
        """Screen names (lower case) of registered groups -> their ids, without asking VK."""
        if not names:
            return {}
        rows = self.postgres.execute(
            sql.SQL(
                "SELECT lower(screen_name), group_id FROM {} WHERE lower(screen_name) = ANY(%s)"
            ).format(self._t("registered_groups")),
            (list(names),),
        )
        return {r[0]: r[1] for r in rows}

    def removed_among(self, ids: Collection[int]) -> set[int]:
        """Those of `ids` someone stopped tracking."""
        if not ids:
            return set()
        rows = self.postgres.execute(
            sql.SQL(
                "SELECT group_id FROM {} WHERE group_id = ANY(%s) AND removed_at IS NOT NULL"
            ).format(self._t("registered_groups")),
            (list(ids),),
        )
        return {r[0] for r in rows}

    def mark_removed(self, ids: Collection[int]) -> None:
        """Stop tracking: the group's row stays (and so does everything crawled for it)."""
        if not ids:
            return
        self.postgres.execute(
            sql.SQL(
                "INSERT INTO {t} (group_id, registered_by, removed_at) "
                "SELECT unnest(%s::bigint[]), 'unknown', now() "
                "ON CONFLICT (group_id) DO UPDATE SET removed_at = now(), updated_at = now() "
                "WHERE {t}.removed_at IS NULL"
            ).format(t=self._t("registered_groups")),
            (list(ids),),
        )
