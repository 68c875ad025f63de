"""A group-list file -> the communities it names, line by line, and every line it cannot use.

Two shapes of input: plain lists (one or more references per line, separated by spaces, commas
or semicolons) and tables (CSV/TSV with or without a header, .xlsx sheets), where only the
column(s) holding communities are read. Nothing here knows VK's answers or Dagster.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path

from vk_pipeline.grouplists.decode import NotText, decode
from vk_pipeline.grouplists.refs import Parsed, Ref, parse_token


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


MAX_LINE_CHARS = 4096
MAX_FILE_BYTES = 200 * 1024 * 1024
SAMPLE_ROWS = 300
_LINE_SPLIT = re.compile(r"\r\n|\r|\n")
_TOKEN_SPLIT = re.compile(r"[\s,;|]+")
_WORD_SPLIT = re.compile(r"[^\w]+")
_DELIMITERS = ("\t", ";", ",", "|")
_INLINE_COMMENT = re.compile(r"\s#")
_SEPARATORS = re.compile(r"[\s,;|]")
_ITEM_SPLIT = re.compile(r"[,;|]")
_WORDS_SPLIT = re.compile(r"\s+")

# Header cells, matched word by word: a column holding communities, a count, or a label.
_COMMUNITY_WORDS = _wordset(
    "url urls link links href vk вк group groups community communities screen_name domain "
    "address id ids group_id gid owner_id public адрес адреса паблик паблики"
)
_COMMUNITY_PREFIXES = ("ссылк", "групп", "сообществ", "паблик")
_COUNT_WORDS = _wordset("members members_count count subscribers followers количество кол во число")
_COUNT_PREFIXES = ("подписчик", "участник")
_LABEL_WORDS = _wordset(
    "name title names comment comments note notes city category description тема название "
    "имя город категория описание комментарий примечание"
)


@dataclass(frozen=True, slots=True)
class Entry:
    """A community reference found at `line` (the `position`-th reference on it)."""

    line: int
    position: int
    text: str
    ref: Ref
    sheet: str = ""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A line (or one reference on it) that cannot be used, with the reason."""

    line: int
    position: int
    text: str
    reason: str
    sheet: str = ""


@dataclass
class ParsedFile:
    name: str
    sha256: str
    size: int
    encoding: str | None = None
    format: str = "text"
    lines: int = 0
    entries: list[Entry] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # table columns read, as described to people
    file_error: str | None = None


def read_file(path: str | Path) -> ParsedFile:
    """Read and parse one file; a file that cannot be read at all gets `file_error`."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        return ParsedFile(
            path.name,
            "",
            size,
            file_error=f"the file is {size / 2**20:,.0f} MB; a group list may be at most "
            f"{MAX_FILE_BYTES // 2**20} MB",
        )
    return parse_bytes(path.read_bytes(), path.name)


@contextmanager
def _gc_paused() -> Iterator[None]:
    # A big file makes hundreds of thousands of small objects and no reference cycles; the
    # cyclic collector would rescan them over and over (half the time of a 100k-row CSV).
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_bytes(data: bytes, name: str) -> ParsedFile:
    """Parse a file's bytes (`name` is used for its extension and in messages)."""
    with _gc_paused():
        return _parse(data, name)


def _parse(data: bytes, name: str) -> ParsedFile:
    result = ParsedFile(name, hashlib.sha256(data).hexdigest(), len(data))
    try:
        decoded = decode(data)
    except NotText as exc:
        result.file_error = str(exc)
        return result
    if decoded.kind == "xlsx":
        from vk_pipeline.grouplists.xlsx import workbook_rows

        result.format = "xlsx"
        try:
            sheets = workbook_rows(data)
        except NotText as exc:
            result.file_error = str(exc)
            return result
        for sheet, rows in sheets:
            label = sheet if len(sheets) > 1 else ""
            _read_table(result, rows, sheet=label)
        return result
    result.encoding = decoded.encoding
    lines = _LINE_SPLIT.split(decoded.text)
    if lines and lines[-1] == "":
        lines.pop()
    result.lines = len(lines)
    delimiter = sniff_delimiter(lines, name)
    if delimiter is None:
        _read_plain(result, lines)
    else:
        result.format = {"\t": "tsv", ",": "csv", ";": "csv;", "|": "psv"}[delimiter]
        _read_table(result, _csv_rows(result, lines, delimiter))
    result.rejections.sort(key=lambda r: (r.line, r.position))
    return result


# -- shapes ------------------------------------------------------------------------------------


def _is_data(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def sniff_delimiter(lines: Sequence[str], name: str = "") -> str | None:
    """The delimiter every data line has equally often, or None for a plain list."""
    sample = [ln for ln in _head(lines) if _is_data(ln) and "\x00" not in ln]
    if len(sample) < 1:
        return None
    preferred = "\t" if name.lower().endswith(".tsv") else None
    best: tuple[float, int, str] | None = None
    for d in _DELIMITERS:
        # Fields as csv splits them, so a quoted "Кофе; и всё" is one cell, not two.
        counts = [len(cells) - 1 for cells in csv.reader(sample, delimiter=d)]
        mode = max(set(counts), key=counts.count)
        if mode < 1:
            continue
        share = counts.count(mode) / len(counts)
        rank = (share, int(d == preferred), d)
        if share >= 0.9 and (best is None or rank[:2] > best[:2]):
            best = rank
    return best[2] if best else None


def _head(lines: Sequence[str]) -> Iterator[str]:
    taken = 0
    for ln in lines:
        if taken >= SAMPLE_ROWS:
            return
        if _is_data(ln):
            taken += 1
        yield ln


def _line_problem(line: str) -> str | None:
    if "\x00" in line:
        return "the line contains NUL bytes (binary data), not text"
    if len(line) > MAX_LINE_CHARS:
        return (
            f"the line is {len(line):,} characters long; a group-list line holds at most "
            f"{MAX_LINE_CHARS:,}"
        )
    return None


def _preview(text: str) -> str:
    text = text.replace("\x00", "\\0")
    return text if len(text) <= 120 else text[:117] + "…"


def _read_plain(result: ParsedFile, lines: Sequence[str]) -> None:
    header_checked = False
    for number, line in enumerate(lines, start=1):
        problem = _line_problem(line)
        if problem:
            result.rejections.append(Rejection(number, 0, _preview(line), problem))
            continue
        text = _strip_comment(line)
        if not text:
            continue
        if not header_checked:
            header_checked = True
            if _is_header([text]):
                result.columns = [text.strip()]
                continue
        _read_field(result, text, number, 0)


def _strip_comment(line: str) -> str:
    stripped = line.strip()
    if stripped.startswith("#"):
        return ""
    # "zerno # our favourite": a comment after whitespace; "vk.com/x#wall" keeps its fragment.
    cut = _INLINE_COMMENT.search(stripped)
    return stripped[: cut.start()].strip() if cut else stripped


def _read_field(result: ParsedFile, text: str, line: int, position: int, sheet: str = "") -> int:
    """Add the references in one field (a plain line or a table cell); returns the next position.

    Commas and semicolons separate items; spaces separate words of one item. In an item with an
    unmistakable token (a link, `@name`, `club123`, `id5`) only such tokens count and the words
    beside it are a label ("Кофейня Зерно vk.com/zerno", "vk.com/zerno 1200 подписчиков"). An
    item naming nothing is rejected as a whole, unless the field has a reference elsewhere.
    """
    if not _SEPARATORS.search(text):
        # One token, the usual line: no label logic needed.
        _add(result, line, position, text, parse_token(text), sheet)
        return position + 1
    items = [
        [(t, parse_token(t)) for t in _WORDS_SPLIT.split(item) if t]
        for item in _ITEM_SPLIT.split(text)
    ]
    items = [item for item in items if item]
    field_has_ref = any(p.ref or p.strong for item in items for _, p in item)
    for item in items:
        if any(p.strong for _, p in item):
            chosen = [(t, p) for t, p in item if p.strong]
        else:
            chosen = [(t, p) for t, p in item if p.ref]
        if chosen:
            for token, p in chosen:
                _add(result, line, position, token, p, sheet)
                position += 1
        elif not field_has_ref:
            words = " ".join(t for t, _ in item)
            reason = (
                item[0][1].reason
                if len(item) == 1
                else f"{_preview(words)!r} names no VK community "
                "(expected an id, a screen name or a vk.com link)"
            )
            result.rejections.append(
                Rejection(line, position, _preview(words), reason or "", sheet)
            )
            position += 1
    return position


def _add(result: ParsedFile, line: int, position: int, token: str, p: Parsed, sheet: str) -> None:
    if p.ref is not None:
        result.entries.append(Entry(line, position, token, p.ref, sheet))
    else:
        result.rejections.append(Rejection(line, position, _preview(token), p.reason or "", sheet))


# -- tables ------------------------------------------------------------------------------------

Row = tuple[int, list[str]]  # (line number, cells)


def _csv_rows(result: ParsedFile, lines: Sequence[str], delimiter: str) -> Iterator[Row]:
    """Rows with the number of the line each starts on; bad and comment lines never reach csv.

    A generator, so a 100,000-row file is never held as rows all at once.
    """

    def clean() -> Iterator[str]:
        for number, line in enumerate(lines, start=1):
            problem = _line_problem(line)
            if problem:
                result.rejections.append(Rejection(number, 0, _preview(line), problem))
                yield "\n"
            elif line.lstrip().startswith("#"):
                yield "\n"
            else:
                yield line + "\n"

    reader = csv.reader(clean(), delimiter=delimiter)
    start = 1
    for cells in reader:
        if any(c.strip() for c in cells):
            yield start, cells
        start = reader.line_num + 1


def _words(cell: str) -> list[str]:
    return [w for w in _WORD_SPLIT.split(cell.lower()) if w]


def _column_kind(cell: str) -> str | None:
    words = _words(cell)
    joined = "_".join(words)
    if joined in _COMMUNITY_WORDS or any(
        w in _COMMUNITY_WORDS or w.startswith(_COMMUNITY_PREFIXES) for w in words
    ):
        return "community"
    if joined in _COUNT_WORDS or any(
        w in _COUNT_WORDS or w.startswith(_COUNT_PREFIXES) for w in words
    ):
        return "count"
    if joined in _LABEL_WORDS or any(w in _LABEL_WORDS for w in words):
        return "label"
    return None


def _is_header(cells: Sequence[str]) -> bool:
    """A first row of column names: nothing in it is a link or id, and some cell is a name."""
    for cell in cells:
        for token in _TOKEN_SPLIT.split(cell):
            if token and parse_token(token).strong:
                return False
    return any(_column_kind(c) for c in cells if c.strip())


def _cell_scores(rows: Iterable[Row], ncols: int) -> tuple[list[float], list[float]]:
    filled = [0] * ncols
    strong = [0] * ncols
    good = [0] * ncols
    for _, cells in rows:
        for i, cell in enumerate(cells[:ncols]):
            tokens = [t for t in _TOKEN_SPLIT.split(cell) if t]
            if not tokens:
                continue
            filled[i] += 1
            parsed = [parse_token(t) for t in tokens]
            strong[i] += any(p.strong and p.ref for p in parsed)
            good[i] += any(p.ref for p in parsed)
    return (
        [s / f if f else 0.0 for s, f in zip(strong, filled, strict=True)],
        [g / f if f else 0.0 for g, f in zip(good, filled, strict=True)],
    )


def choose_columns(rows: Sequence[Row], header: Sequence[str] | None) -> list[int]:
    """The columns that hold communities: by the header's names, then by what the cells hold."""
    ncols = max((len(cells) for _, cells in rows), default=0)
    if ncols == 0:
        return []
    strong, good = _cell_scores(rows[:SAMPLE_ROWS], ncols)
    kinds = [_column_kind(header[i]) if header and i < len(header) else None for i in range(ncols)]
    named = [i for i in range(ncols) if kinds[i] == "community" and good[i] > 0]
    if named:
        top = max(good[i] for i in named)
        return [i for i in named if good[i] >= 0.5 * top]
    strong_cols = [i for i in range(ncols) if strong[i] >= 0.5]
    if strong_cols:
        return strong_cols
    top = max(good)
    if top == 0:
        return list(range(ncols))
    chosen = [
        i for i in range(ncols) if good[i] >= 0.8 * top and kinds[i] not in ("count", "label")
    ]
    return chosen or [good.index(top)]


def _read_table(result: ParsedFile, rows: Iterable[Row], sheet: str = "") -> None:
    stream = iter(rows)
    head = list(islice(stream, SAMPLE_ROWS + 1))
    if not head:
        return
    header: list[str] | None = None
    if _is_header(head[0][1]):
        header = [c.strip() for c in head[0][1]]
        head = head[1:]
    columns = choose_columns(head, header)
    names = [
        (header[i] if header and i < len(header) and header[i] else f"column {i + 1}")
        for i in columns
    ]
    result.columns.extend(f"{sheet}: {n}" if sheet else n for n in names)
    described = " / ".join(repr(n) for n in names)
    last = 0
    for number, cells in chain(head, stream):
        last = number
        first = next((c.strip() for c in cells if c.strip()), "")
        if first.startswith("#"):
            continue
        position = 0
        found = False
        for i in columns:
            cell = cells[i].strip() if i < len(cells) else ""
            if cell:
                found = True
                position = _read_field(result, cell, number, position, sheet)
        if not found:
            text = _preview(" | ".join(c.strip() for c in cells))
            result.rejections.append(
                Rejection(number, 0, text, f"the {described} cell is empty on this row", sheet)
            )
    if result.format == "xlsx":
        result.lines += last
