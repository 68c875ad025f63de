"""Files -> reports: the communities each names (resolved through VK) and every rejected line.

The sensor and `python -m vk_pipeline groups check|add` both come through `check_files`, so a file
reads the same everywhere. References of all files given at once are resolved together: ten
files cost the VK requests of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vk_pipeline.grouplists.reader import ParsedFile, Rejection, parse_bytes, read_file
from vk_pipeline.grouplists.resolve import GroupInfo, resolve
from vk_pipeline.vk import VKClient


@dataclass(frozen=True, slots=True)
class FoundGroup:
    """A community a file names: where it is first named, and what VK says about it."""

    info: GroupInfo
    line: int
    text: str
    sheet: str = ""

    @property
    def id(self) -> int:
        return self.info.id


@dataclass
class FileReport:
    path: str  # as the caller named the file
    parsed: ParsedFile
    groups: list[FoundGroup] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    duplicates: int = 0  # references to a community already named earlier in the file

    @property
    def name(self) -> str:
        return self.parsed.name

    @property
    def list_name(self) -> str:
        """The group list a file stands for is named by its stem: `coffee shops.csv` ->
        `coffee shops`."""
        return Path(self.parsed.name).stem or self.parsed.name

    @property
    def sha256(self) -> str:
        return self.parsed.sha256

    @property
    def file_error(self) -> str | None:
        return self.parsed.file_error

    @property
    def deactivated(self) -> int:
        return sum(1 for g in self.groups if g.info.deactivated)

    def summary(self) -> str:
        if self.file_error:
            return f"{self.path}: not read: {self.file_error}"
        parts = [
            f"{self.parsed.lines:,} lines",
            f"{len(self.groups):,} groups",
        ]
        if self.deactivated:
            parts.append(f"{self.deactivated:,} of them banned or deleted")
        parts.append(f"{len(self.rejections):,} rejected")
        if self.duplicates:
            parts.append(f"{self.duplicates:,} duplicates")
        fmt = self.parsed.format + (f", {self.parsed.encoding}" if self.parsed.encoding else "")
        columns = f", column {', '.join(self.parsed.columns)}" if self.parsed.columns else ""
        return f"{self.path}: {', '.join(parts)} ({fmt}{columns})"

    def rejection_lines(self) -> list[str]:
        """`FILE:LINE: reason` for each rejected line, in file order."""
        if self.file_error:
            return [f"{self.path}: {self.file_error}"]
        out = []
        for r in self.rejections:
            where = f" [sheet {r.sheet}]" if r.sheet else ""
            out.append(f"{self.path}:{r.line}:{where} {r.reason}")
        return out

    def to_json(self) -> dict[str, Any]:
        rejected = [
            {
                "line": r.line,
                "text": r.text,
                "reason": r.reason,
                **({"sheet": r.sheet} if r.sheet else {}),
            }
            for r in self.rejections
        ]
        out: dict[str, Any] = {
            "file": self.path,
            "list": self.list_name,
            "sha256": self.sha256,
            "groups": [g.id for g in self.groups],
            "rejected": rejected,
            "lines": self.parsed.lines,
            "duplicates": self.duplicates,
            "deactivated": {
                str(g.id): g.info.deactivated for g in self.groups if g.info.deactivated
            },
            "format": self.parsed.format,
            "encoding": self.parsed.encoding,
        }
        if self.file_error:
            out["error"] = self.file_error
        return out


def load(path: str | Path) -> ParsedFile:
    """Read one file; any failure to read it becomes the file's error, never an exception."""
    try:
        return read_file(path)
    except OSError as exc:
        parsed = parse_bytes(b"", Path(path).name)
        parsed.file_error = f"cannot be read: {exc.strerror or type(exc).__name__}"
        return parsed


def check_files(
    files: Sequence[tuple[str, ParsedFile]], client: VKClient
) -> tuple[list[FileReport], int]:
    """Reports for already parsed files, resolving all their references in one pass.

    Returns the reports and the HTTP requests spent. VK errors that end a call (token, network,
    quota) propagate: the caller decides whether to retry later.
    """
    refs = [e.ref for _, parsed in files for e in parsed.entries]
    resolution = resolve(client, refs)
    reports = []
    for path, parsed in files:
        report = FileReport(path, parsed)
        rejections = list(parsed.rejections)
        seen: dict[int, FoundGroup] = {}
        for entry in parsed.entries:
            info = resolution.found.get(entry.ref)
            if info is None:
                reason = resolution.missing.get(entry.ref, "VK did not answer for it")
                rejections.append(
                    Rejection(entry.line, entry.position, entry.text, reason, entry.sheet)
                )
            elif info.id in seen:
                report.duplicates += 1
            else:
                seen[info.id] = FoundGroup(info, entry.line, entry.text, entry.sheet)
        report.groups = list(seen.values())
        sheets = {
            s: i
            for i, s in enumerate(dict.fromkeys(x.sheet for x in (*parsed.entries, *rejections)))
        }
        report.rejections = sorted(rejections, key=lambda r: (sheets[r.sheet], r.line, r.position))
        reports.append(report)
    return reports, resolution.http_requests
