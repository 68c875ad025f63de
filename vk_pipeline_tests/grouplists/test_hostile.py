"""Hostile files, in small sizes of the same shapes (issue 19 items 1, 2, 6, 7, 9; issue 22 item 7):
every limit rejects with a message naming it, a malformed row is one rejected line, and no text
from a file reaches a message unescaped or with a secret in it."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from vk_pipeline.grouplists import parse_bytes, read_file
from vk_pipeline.grouplists import reader as reader_module
from vk_pipeline.grouplists import xlsx as xlsx_module
from vk_pipeline.grouplists.decode import MAX_XLSX_UNPACKED_BYTES
from vk_pipeline.grouplists.excerpts import escaped, excerpt
from vk_pipeline.grouplists.isolated import parse_isolated
from vk_pipeline.grouplists.reader import MAX_FILE_BYTES, MAX_LINES
from vk_pipeline.testing.corpus import PNG_BYTES
from vk_pipeline.testing.workbooks import SHEET_HEAD, SHEET_PATH, SHEET_TAIL, write_book_parts

SECRET = "vk1.a.Zk9qR2xvT0hHc2VjcmV0VG9rZW5Gb3JUZXN0c09ubHkxMjM0NTY3ODk"


def bomb(rows: int, cols: int = 8) -> bytes:
    """A minimal workbook whose one sheet holds rows x cols inline cells: tiny zipped."""
    body = "".join(
        f'<row r="{r}">'
        + "".join(
            f'<c r="{chr(65 + c)}{r}" t="inlineStr"><is><t>x</t></is></c>' for c in range(cols)
        )
        + "</row>"
        for r in range(1, rows + 1)
    )
    return _workbook(SHEET_HEAD + body + SHEET_TAIL)


def _workbook(sheet_xml: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        write_book_parts(z)
        z.writestr(SHEET_PATH, sheet_xml)
    return buf.getvalue()


def test_a_workbook_that_unpacks_past_the_cap_is_refused_from_its_zip_directory():
    padding = "<!--" + " " * (MAX_XLSX_UNPACKED_BYTES + 1024) + "-->"
    data = _workbook(SHEET_HEAD + SHEET_TAIL + padding)
    assert len(data) < MAX_XLSX_UNPACKED_BYTES // 100  # the bomb's shape: small zipped
    parsed = parse_bytes(data, "bomb.xlsx")
    assert parsed.file_error is not None
    assert f"at most {MAX_XLSX_UNPACKED_BYTES // 2**20} MB" in parsed.file_error


def test_a_workbook_over_the_cell_cap_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(xlsx_module, "MAX_CELLS", 1_000)
    parsed = parse_bytes(bomb(rows=200), "bomb.xlsx")
    assert parsed.file_error is not None and "may have at most 1,000" in parsed.file_error
    assert parsed.entries == []


def test_a_cell_far_to_the_right_is_refused_not_padded():
    sheet = SHEET_HEAD + '<row r="1"><c r="XFD1" t="inlineStr"><is><t>club1</t></is></c></row>'
    parsed = parse_bytes(_workbook(sheet + SHEET_TAIL), "wide.xlsx")
    assert parsed.file_error is not None and "column 16,384" in parsed.file_error


def test_the_streaming_workbook_reader_reads_inline_and_numeric_cells():
    sheet = (
        SHEET_HEAD
        + '<row r="1"><c r="A1" t="inlineStr"><is><t>url</t></is></c></row>'
        + '<row r="2"><c r="A2"><v>1.23E2</v></c></row>'
        + '<row r="5"><c r="A5" t="inlineStr"><is><t>vk.com/club7</t></is></c></row>'
        + SHEET_TAIL
    )
    parsed = parse_bytes(_workbook(sheet), "ok.xlsx")
    assert parsed.file_error is None
    assert [(e.line, e.ref.value) for e in parsed.entries] == [(2, 123), (5, 7)]


def test_a_file_over_the_size_cap_is_rejected_without_being_kept(tmp_path: Path):
    path = tmp_path / "huge.txt"
    with path.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    parsed = read_file(path)
    assert parsed.file_error is not None
    assert f"at most {MAX_FILE_BYTES // 2**20} MB" in parsed.file_error
    assert len(parsed.sha256) == 64  # hashed as a stream, so it is recorded by content


def test_a_file_over_the_line_cap_is_rejected_naming_it():
    parsed = parse_bytes(b"club1\n" * (MAX_LINES + 1), "many.txt")
    assert parsed.file_error is not None and f"at most {MAX_LINES:,}" in parsed.file_error
    assert parsed.entries == []


def test_a_line_past_the_csv_field_limit_is_one_rejected_line():
    data = ("url,note\nclub1,a\nclub2," + "x" * 140_000 + "\nclub3,b\n").encode()
    parsed = parse_bytes(data, "long.csv")
    assert parsed.file_error is None
    assert [e.ref.value for e in parsed.entries] == [1, 3]
    [rejected] = parsed.rejections
    assert rejected.line == 3 and "140,006 characters" in rejected.reason
    assert len(rejected.text) <= 80


def test_one_malformed_row_is_one_rejected_line_and_the_note_column_stays_unread():
    data = (
        b"url,note\nclub1,hello\n0,x\n12345678901234567890123,y\n"
        b'"club2,zz\nclub3,vk.com/club99 named only in a note\nclub4,ok\n'
    )
    parsed = parse_bytes(data, "one bad row.csv")
    assert parsed.format == "csv" and parsed.columns == ["url"]
    assert [e.ref.value for e in parsed.entries] == [1, 3, 4]  # no 99, no "hello"
    reasons = {r.line: r.reason for r in parsed.rejections}
    assert set(reasons) == {3, 4, 5}
    assert "0 is not a community id" in reasons[3]
    assert "too large" in reasons[4]
    assert "never closed" in reasons[5]


def test_zero_and_a_23_digit_id_in_a_plain_list_are_rejected():
    parsed = parse_bytes(b"club1\n0\n12345678901234567890123\n", "ids.txt")
    assert [r.line for r in parsed.rejections] == [2, 3]


def test_sql_junk_is_rejected_whole_not_resolved_word_by_word():
    parsed = parse_bytes(b"club1\n'; DROP TABLE groups;--\nclub2\n", "junk.txt")
    assert [e.ref.value for e in parsed.entries] == [1, 2]
    [rejected] = parsed.rejections
    assert rejected.line == 2 and "not read as a list of communities" in rejected.reason


def test_utf8_with_a_few_bad_bytes_stays_utf8_and_rejects_only_those_lines():
    data = "club1\nКофе club5\n".encode() + b"bad \xff\xfe line club7\n" + "Зерно @zerno\n".encode()
    parsed = parse_bytes(data, "damaged.txt")
    assert parsed.encoding == "utf-8"
    assert [e.ref.value for e in parsed.entries] == [1, 5, "zerno"]
    [rejected] = parsed.rejections
    assert rejected.line == 3 and "not valid utf-8" in rejected.reason


def test_a_picture_is_not_a_group_list():
    parsed = parse_bytes(PNG_BYTES, "photo.txt")
    assert parsed.file_error is not None and "PNG" in parsed.file_error


def test_a_dropped_env_file_leaves_no_secret_in_rejections():
    data = f"VK_ACCESS_TOKEN={SECRET}\nexport DB_PASSWORD=hunter2x\n{SECRET}\nclub1\n".encode()
    parsed = parse_bytes(data, ".env.txt")
    assert [e.ref.value for e in parsed.entries] == [1]
    shown = " ".join(f"{r.text} {r.reason}" for r in parsed.rejections)
    assert len(parsed.rejections) == 3
    assert SECRET not in shown and SECRET[:20] not in shown and "hunter2x" not in shown


@pytest.mark.parametrize(
    "text, expected",
    [
        ("evil\nname.txt", "evil\\nname.txt"),
        ("a\x1b[31mred", "a\\x1b[31mred"),
        ("nul\x00", "nul\\0"),
        ("rtl\u202etxt.exe", "rtl\\u202etxt.exe"),
    ],
)
def test_excerpts_escape_control_characters(text: str, expected: str):
    assert excerpt(text) == expected


def test_excerpts_are_short():
    assert len(excerpt("x" * 10_000)) <= 80


def test_the_isolated_reader_names_its_memory_limit_and_still_reports_the_hash(tmp_path: Path):
    path = tmp_path / "labels.txt"
    path.write_text("club12345 some label words here\n" * 150_000)
    fd = os.open(path, os.O_RDONLY)
    try:
        parsed = parse_isolated(
            fd, path.name, fallback_sha256="0" * 64, size=1, memory_bytes=60 * 2**20
        )
    finally:
        os.close(fd)
    assert parsed.file_error is not None and "more than 60 MB of memory" in parsed.file_error
    assert parsed.sha256 != "0" * 64


def test_the_isolated_reader_is_killed_at_its_deadline(tmp_path: Path):
    path = tmp_path / "slow.txt"
    path.write_text("club12345 some label words here\n" * 150_000)
    fd = os.open(path, os.O_RDONLY)
    try:
        parsed = parse_isolated(fd, path.name, fallback_sha256="f" * 64, size=1, deadline=0.5)
    finally:
        os.close(fd)
    assert parsed.file_error is not None and "longer than 0.5 s" in parsed.file_error
    assert "the limit for one dropped file" in parsed.file_error


def test_the_isolated_reader_returns_what_the_reader_returns(tmp_path: Path):
    path = tmp_path / "ok.csv"
    path.write_bytes(b"url,note\nclub1,a\n0,b\n")
    fd = os.open(path, os.O_RDONLY)
    try:
        parsed = parse_isolated(fd, path.name, fallback_sha256="f" * 64, size=1)
    finally:
        os.close(fd)
    direct = reader_module.read_file(path)
    assert parsed == direct


def test_file_names_are_escaped_but_not_masked():
    assert escaped("list=cafes 2024.csv") == "list=cafes 2024.csv"
    assert escaped("a\nb.txt") == "a\\nb.txt"
