"""Rows of an .xlsx workbook as text cells, hyperlinks included, read as a stream under caps.

Not openpyxl: its full mode builds every cell of a sheet in memory (a 1.3 MB workbook that
unpacks to 300 MB took 2.6 GB), and its read-only mode drops hyperlinks and pads every row to the
sheet's declared width. This reads the sheet XML with `iterparse`, one row at a time, counting the
cells that exist, and stops at the first cap it passes. The zip directory has been checked
against `MAX_XLSX_UNPACKED_BYTES` already (`decode.check_unpacked_size`); the members are read
through a counter as well, since a directory can lie about sizes.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from collections.abc import Iterator
from typing import IO
from xml.etree.ElementTree import Element, ParseError, iterparse

from vk_pipeline.grouplists.decode import MAX_XLSX_UNPACKED_BYTES, NotText, check_unpacked_size

MAX_CELLS = 1_000_000
MAX_COLUMNS = 200
_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_CELL_REF = re.compile(r"([A-Z]{1,3})(\d+)")

Sheet = tuple[str, list[tuple[int, list[str]]]]


class _Capped(io.RawIOBase):
    """A member's bytes, refused past the budget left for the whole workbook."""

    def __init__(self, raw: IO[bytes], budget: list[int]) -> None:
        self._raw = raw
        self._budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        self._budget[0] -= len(data)
        if self._budget[0] < 0:
            raise NotText(
                f"this workbook unpacks to more than {MAX_XLSX_UNPACKED_BYTES // 2**20} MB; a "
                f"group-list workbook may unpack to at most {MAX_XLSX_UNPACKED_BYTES // 2**20} MB"
            )
        buffer[: len(data)] = data
        return len(data)


class _Book:
    def __init__(self, data: bytes) -> None:
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            check_unpacked_size(self.zip.infolist())
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            raise NotText(f"this .xlsx workbook cannot be opened ({type(exc).__name__})") from None
        self.names = set(self.zip.namelist())
        self.budget = [MAX_XLSX_UNPACKED_BYTES]

    def elements(self, name: str, tags: set[str]) -> Iterator[Element]:
        """End events of `tags` in member `name` (nothing if it is absent); each element is
        cleared after the caller has seen it, so memory stays at one row."""
        if name not in self.names:
            return
        try:
            with self.zip.open(name) as raw:
                stack: list[Element] = []
                for event, element in iterparse(
                    io.BufferedReader(_Capped(raw, self.budget)), events=("start", "end")
                ):
                    if event == "start":
                        stack.append(element)
                        continue
                    stack.pop()
                    if element.tag in tags:
                        yield element
                        # Detached from its parent too: a cleared row still costs its node.
                        if stack:
                            stack[-1].remove(element)
                        element.clear()
        except (ParseError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise NotText(
                f"this .xlsx workbook is damaged ({type(exc).__name__} in {name})"
            ) from None

    def relationships(self, part: str) -> dict[str, str]:
        """Id -> target of `part`'s relationships, targets resolved against its folder."""
        folder, base = posixpath.split(part)
        rels = posixpath.join(folder, "_rels", base + ".rels")
        out: dict[str, str] = {}
        for rel in self.elements(rels, {f"{_PKG_REL}Relationship"}):
            target = rel.get("Target") or ""
            if rel.get("TargetMode") != "External":
                target = (
                    target.lstrip("/")
                    if target.startswith("/")
                    else posixpath.normpath(posixpath.join(folder, target))
                )
            out[rel.get("Id") or ""] = target
        return out


def _column(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def _number(text: str) -> str:
    # Excel stores every number as a float: group id 123 may arrive as 123 or 1.23E2.
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if value.is_integer() and abs(value) < 1e18 else text


def _text_of(element: Element | None) -> str:
    if element is None:
        return ""
    return "".join(t.text or "" for t in element.iter(f"{_MAIN}t"))


def workbook_rows(data: bytes) -> list[Sheet]:
    """[(sheet title, [(row number, cells)])] for every sheet that has any non-empty row.

    A cell shown as "Кофейня Зерно" but linked to vk.com/zerno reads as both, so the link counts.
    Raises `NotText` naming the cap a workbook passes (cells, columns, unpacked size).
    """
    book = _Book(data)
    rels = book.relationships("xl/workbook.xml")
    shared = [_text_of(si) for si in book.elements("xl/sharedStrings.xml", {f"{_MAIN}si"})]
    sheets: list[Sheet] = []
    cells_left = [MAX_CELLS]
    listed = [
        (sheet.get("name") or "", rels.get(sheet.get(f"{_REL}id") or "", ""))
        for sheet in book.elements("xl/workbook.xml", {f"{_MAIN}sheet"})
    ]
    for title, part in listed:
        rows = _sheet_rows(book, part, shared, cells_left)
        if rows:
            sheets.append((title, rows))
    return sheets


def _sheet_rows(
    book: _Book, part: str, shared: list[str], cells_left: list[int]
) -> list[tuple[int, list[str]]]:
    rows: dict[int, dict[int, str]] = {}
    links: list[tuple[str, str]] = []
    row_number = 0
    for element in book.elements(part, {f"{_MAIN}row", f"{_MAIN}hyperlink"}):
        if element.tag == f"{_MAIN}hyperlink":
            links.append((element.get("ref") or "", element.get(f"{_REL}id") or ""))
            continue
        row_number = int(element.get("r") or row_number + 1)
        cells: dict[int, str] = {}
        column = -1
        for c in element.iter(f"{_MAIN}c"):
            cells_left[0] -= 1
            if cells_left[0] < 0:
                raise NotText(
                    f"this workbook has more than {MAX_CELLS:,} cells; a group-list workbook may "
                    f"have at most {MAX_CELLS:,}"
                )
            match = _CELL_REF.fullmatch(c.get("r") or "")
            column = _column(match.group(1)) if match else column + 1
            if column >= MAX_COLUMNS:
                raise NotText(
                    f"this workbook has a cell in column {column + 1:,}; a group-list sheet may "
                    f"use at most {MAX_COLUMNS} columns"
                )
            text = _cell_value(c, shared)
            if text:
                cells[column] = text
        if cells:
            rows[row_number] = cells
    if links:
        targets = book.relationships(part)
        for ref, rid in links:
            match = _CELL_REF.fullmatch(ref.split(":")[0])
            target = targets.get(rid)
            if not match or not target:
                continue
            row = rows.setdefault(int(match.group(2)), {})
            column = _column(match.group(1))
            text = row.get(column, "")
            if column < MAX_COLUMNS and target not in text:
                row[column] = f"{text} {target}".strip()
    out = []
    for number in sorted(rows):
        cells = rows[number]
        width = max(cells) + 1
        out.append((number, [cells.get(i, "") for i in range(width)]))
    return out


def _cell_value(c: Element, shared: list[str]) -> str:
    kind = c.get("t")
    if kind == "inlineStr":
        return _text_of(c.find(f"{_MAIN}is")).replace("\x00", "")
    v = c.find(f"{_MAIN}v")
    raw = (v.text or "") if v is not None else ""
    if kind == "s":
        try:
            return shared[int(raw)].replace("\x00", "")
        except (ValueError, IndexError):
            return ""
    if kind == "b":
        return "True" if raw == "1" else "False"
    if kind in ("str", "e"):
        return "" if kind == "e" else raw.replace("\x00", "")
    return _number(raw) if raw else ""
