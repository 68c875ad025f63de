"""A group-list file -> the communities it names, line by line, and every line it cannot use.

Two shapes of input: plain lists (one or more references per line, separated by spaces, commas
or semicolons) and tables (CSV/TSV with or without a header, .xlsx sheets), where only the
column(s) holding communities are read. Nothing here knows VK's answers or Dagster.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import BinaryIO

from vk_pipeline.grouplists.decode import NotText, decode
from vk_pipeline.grouplists.excerpts import excerpt
from vk_pipeline.grouplists.refs import Parsed, Ref, parse_token


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


# The limits a group-list file is read under (README, "Limits"). A file over one is rejected
# whole with a message naming it; a line over the line limit is rejected alone.
MAX_LINE_CHARS = 4096
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_LINES = 200_000
# A quoted CSV cell may span lines; one whose quote never closes is cut off after this many.
MAX_QUOTED_LINES = 20
SAMPLE_ROWS = 300
_READ_CHUNK = 1 << 20
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


def too_big(size: int) -> str:
    return (
        f"the file is {size / 2**20:,.1f} MB; a group list may be at most "
        f"{MAX_FILE_BYTES // 2**20} MB"
    )


def read_file(path: str | Path) -> ParsedFile:
    """Read and parse one file; a file that cannot be read at all gets `file_error`."""
    path = Path(path)
    with path.open("rb") as stream:
        return read_stream(stream, path.name)


def read_stream(
    stream: BinaryIO, name: str, on_hashed: Callable[[str], None] | None = None
) -> ParsedFile:
    """Hash the whole stream, keep at most `MAX_FILE_BYTES` of it, parse that.

    The bytes past the cap are hashed, never kept: a 48 MB file costs 1 MB of memory to reject.
    `on_hashed` hears the hash before parsing starts (the isolated reader reports it early, so a
    file that then runs out of time is still recorded under its content hash).
    """
    digest = hashlib.sha256()
    kept = bytearray()
    size = 0
    while chunk := stream.read(_READ_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if size <= MAX_FILE_BYTES:
            kept += chunk
    sha = digest.hexdigest()
    if on_hashed is not None:
        on_hashed(sha)
    if size > MAX_FILE_BYTES:
        return ParsedFile(name, sha, size, file_error=too_big(size))
    return parse_bytes(bytes(kept), name)


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
    if len(data) > MAX_FILE_BYTES:
        result.file_error = too_big(len(data))
        return result
    # Counted on the bytes, before anything is split: a 4-million-line file stops here.
    newlines = max(data.count(b"\n"), data.count(b"\r"))
    if newlines > MAX_LINES:
        result.file_error = (
            f"the file has more than {MAX_LINES:,} lines ({newlines:,}); a group list may have "
            f"at most {MAX_LINES:,}"
        )
        return result
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
    if decoded.damaged_lines:
        for number, line in enumerate(lines, start=1):
            if "\ufffd" in line:
                result.rejections.append(
                    Rejection(
                        number,
                        0,
                        excerpt(line),
                        f"the line is not valid {decoded.encoding} text (the rest of the file is)",
                    )
                )
                lines[number - 1] = ""
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
    """The delimiter most data lines have equally often, or None for a plain list.

    Each line is split on its own, so one malformed row (an unclosed quote, a long field) changes
    only its own count and never how the whole file is read.
    """
    sample = [
        ln for ln in _head(lines) if _is_data(ln) and "\x00" not in ln and len(ln) <= MAX_LINE_CHARS
    ]
    if len(sample) < 1:
        return None
    preferred = "\t" if name.lower().endswith(".tsv") else None
    best: tuple[float, int, str] | None = None
    for d in _DELIMITERS:
        # Fields as csv splits them, so a quoted "Кофе; и всё" is one cell, not two.
        counts = [_cells_in(ln, d) - 1 for ln in sample]
        mode = max(set(counts), key=counts.count)
        if mode < 1:
            continue
        share = counts.count(mode) / len(counts)
        rank = (share, int(d == preferred), d)
        if share >= 0.6 and (best is None or rank[:2] > best[:2]):
            best = rank
    return best[2] if best else None


def _cells_in(line: str, delimiter: str) -> int:
    try:
        return len(next(csv.reader([line], delimiter=delimiter), []))
    except csv.Error:
        return 0


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


_preview = excerpt


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
    if not any(p.strong for item in items for _, p in item):
        junk = next((t for item in items for t, p in item if p.ref is None and _is_junk(t)), None)
        if junk is not None:
            # `'; DROP TABLE groups;--` or a config line: text that is no list of communities.
            # Its words are not sent to VK one by one as screen names; the line goes as a whole.
            result.rejections.append(
                Rejection(
                    line,
                    position,
                    _preview(text),
                    f"the line holds {_preview(junk, 24)!r}, which is neither a community "
                    "reference nor a word; the line is not read as a list of communities",
                    sheet,
                )
            )
            return position + 1
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
                _reason(item[0][0], item[0][1].reason)
                if len(item) == 1
                else f"{_preview(words)!r} names no VK community "
                "(expected an id, a screen name or a vk.com link)"
            )
            result.rejections.append(
                Rejection(line, position, _preview(words), reason or "", sheet)
            )
            position += 1
    return position


def _is_junk(token: str) -> bool:
    """Neither a reference nor a plain word of a label ("Кофейня", "Зерно", "1200")."""
    return not token.isalnum()


def _add(result: ParsedFile, line: int, position: int, token: str, p: Parsed, sheet: str) -> None:
    if p.ref is not None:
        result.entries.append(Entry(line, position, token, p.ref, sheet))
    else:
        result.rejections.append(
            Rejection(line, position, _preview(token), _reason(token, p.reason), sheet)
        )


def _reason(token: str, reason: str | None) -> str:
    """A reason quotes its token: quoted as an excerpt, so it carries no secret or newline."""
    shown = excerpt(token, 40)
    return (reason or "").replace(repr(token), repr(shown)).replace(token, shown)


# -- tables ------------------------------------------------------------------------------------

Row = tuple[int, list[str]]  # (line number, cells)


def _csv_rows(result: ParsedFile, lines: Sequence[str], delimiter: str) -> Iterator[Row]:
    """Rows with the number of the line each starts on; bad and comment lines never reach csv.

    Each record is cut out here and handed to csv alone: a quote that never closes rejects the
    line it opened on (after `MAX_QUOTED_LINES` lines or `MAX_LINE_CHARS` characters) and reading
    goes on with the next line, instead of csv swallowing the rest of the file into one field.
    A generator, so a 100,000-row file is never held as rows all at once.
    """
    i, n = 0, len(lines)
    while i < n:
        line, number = lines[i], i + 1
        problem = _line_problem(line)
        if problem:
            result.rejections.append(Rejection(number, 0, _preview(line), problem))
            i += 1
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        end, text = i, line
        while text.count('"') % 2 and end + 1 < n and end - i < MAX_QUOTED_LINES:
            nxt = lines[end + 1]
            if _line_problem(nxt) or len(text) + len(nxt) > MAX_LINE_CHARS:
                break
            end += 1
            text += "\n" + nxt
        cells: list[str] | None = None
        if text.count('"') % 2 == 0:
            try:
                cells = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
            except csv.Error:
                cells = None
        if cells is None:
            result.rejections.append(
                Rejection(number, 0, _preview(line), "a quote opened on this line is never closed")
            )
            i += 1
            continue
        if any(c.strip() for c in cells):
            yield number, cells
        i = end + 1


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
