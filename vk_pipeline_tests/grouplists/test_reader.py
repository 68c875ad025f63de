"""File shapes: encodings, line ends, tables with headers, workbooks, junk lines, non-text files."""

from __future__ import annotations

import io
import zipfile

import pytest

from vk_pipeline.emulator import World
from vk_pipeline.grouplists import Ref, parse_bytes
from vk_pipeline.grouplists.reader import MAX_LINE_CHARS, read_file
from vk_pipeline.testing.corpus import PNG_BYTES, Cast, big_lines, corpus


def refs(data: bytes, name: str = "list.txt") -> list[tuple[int, Ref]]:
    parsed = parse_bytes(data, name)
    assert parsed.file_error is None, parsed.file_error
    return [(e.line, e.ref) for e in parsed.entries]


LINES = ["club1", "@zerno_coffee", "vk.com/public2", "-3"]
EXPECTED = [
    (1, Ref("id", 1)),
    (2, Ref("name", "zerno_coffee")),
    (3, Ref("id", 2)),
    (4, Ref("id", 3)),
]


@pytest.mark.parametrize(
    "encoding, bom, newline, detected",
    [
        ("utf-8", b"", "\n", "utf-8"),
        ("utf-8", b"\xef\xbb\xbf", "\r\n", "utf-8-sig"),
        ("utf-16-le", b"\xff\xfe", "\r\n", "utf-16"),
        ("utf-16-be", b"\xfe\xff", "\n", "utf-16"),
        ("cp1251", b"", "\r\n", "cp1251"),
        ("utf-8", b"", "\r", "utf-8"),
    ],
)
def test_encodings_and_line_ends_read_alike(encoding, bom, newline, detected):
    # A Cyrillic comment makes cp1251 and UTF-8 bytes differ, as in real files.
    text = newline.join(["# Кофейни", *LINES]) + newline
    parsed = parse_bytes(bom + text.encode(encoding), "list.txt")
    assert parsed.encoding == detected
    assert [(e.line - 1, e.ref) for e in parsed.entries] == EXPECTED
    assert parsed.lines == 5
    assert parsed.rejections == []


def test_utf16_without_bom_is_recognised():
    parsed = parse_bytes("club1\nclub2\n".encode("utf-16-le"), "x.txt")
    assert [e.ref.value for e in parsed.entries] == [1, 2]


def test_comments_blank_lines_and_several_references_per_line():
    data = "# header comment\n\n  \nclub1, club2;club3 club4\nclub5 # the best one\n#club6\n"
    assert refs(data.encode()) == [
        (4, Ref("id", 1)),
        (4, Ref("id", 2)),
        (4, Ref("id", 3)),
        (4, Ref("id", 4)),
        (5, Ref("id", 5)),
    ]


def test_a_label_beside_a_link_is_not_a_community():
    assert refs(
        "Кофейня Зерно vk.com/zerno_coffee\nZerno coffee https://vk.com/club7\n".encode()
    ) == [
        (1, Ref("name", "zerno_coffee")),
        (2, Ref("id", 7)),
    ]


def test_items_split_by_commas_words_by_spaces():
    parsed = parse_bytes(
        "123, club456\nvk.com/zerno 1200 подписчиков\nvk.com/zerno vk.com/id5\n"
        "zerno_coffee, Кофейня\nКофейня Зерно; vk.com/club9\n".encode(),
        "x.txt",
    )
    assert [(e.line, e.ref) for e in parsed.entries] == [
        (1, Ref("id", 123)),
        (1, Ref("id", 456)),
        (2, Ref("name", "zerno")),
        (3, Ref("name", "zerno")),
        (4, Ref("name", "zerno_coffee")),
        (5, Ref("id", 9)),
    ]
    assert [(r.line, r.text) for r in parsed.rejections] == [(3, "vk.com/id5")]


def test_a_line_with_only_words_is_rejected_once_with_its_text():
    parsed = parse_bytes("Кофейня на углу\nclub1\n".encode(), "x.txt")
    assert [(r.line, r.text) for r in parsed.rejections] == [(1, "Кофейня на углу")]
    assert "names no VK community" in parsed.rejections[0].reason
    assert [e.ref.value for e in parsed.entries] == [1]


def test_bad_lines_are_rejected_and_the_rest_is_read():
    long_line = "club9 " * (MAX_LINE_CHARS // 5)
    data = f"club1\nclub2\x00\n{long_line}\nid5\nclub3\n".encode()
    parsed = parse_bytes(data, "x.txt")
    assert [e.ref.value for e in parsed.entries] == [1, 3]
    reasons = {r.line: r.reason for r in parsed.rejections}
    assert set(reasons) == {2, 3, 4}
    assert "NUL" in reasons[2]
    assert f"{len(long_line):,} characters" in reasons[3]
    assert "user's profile" in reasons[4]
    assert "\x00" not in parsed.rejections[0].text  # shown escaped, never raw


def test_csv_header_picks_the_community_column_and_ignores_counts():
    data = "Название;Ссылка;Подписчики\nЗерно;vk.com/zerno;1200\nКофе;club5;300\n"
    parsed = parse_bytes(data.encode("cp1251"), "list.csv")
    assert parsed.format == "csv;"
    assert parsed.columns == ["Ссылка"]
    assert [(e.line, e.ref) for e in parsed.entries] == [
        (2, Ref("name", "zerno")),
        (3, Ref("id", 5)),
    ]


def test_ids_column_by_header_not_the_members_column():
    data = "members\tgroup_id\tcity\n1500\t77\tКазань\n300\t78\tПермь\n"
    parsed = parse_bytes(data.encode(), "export.tsv")
    assert parsed.format == "tsv"
    assert [e.ref.value for e in parsed.entries] == [77, 78]


def test_csv_without_header_reads_the_link_column_only():
    data = "Зерно,https://vk.com/zerno,1200\nКофе,vk.com/club5,300\n"
    parsed = parse_bytes(data.encode(), "list.csv")
    assert [e.ref for e in parsed.entries] == [Ref("name", "zerno"), Ref("id", 5)]


def test_quoted_cells_keep_their_delimiters_and_newlines():
    data = 'name;url\n"Кофе; и ""всё""";vk.com/club5\n"Две\nстроки";vk.com/club6\nТри;club7\n'
    parsed = parse_bytes(data.encode(), "list.csv")
    assert [(e.line, e.ref.value) for e in parsed.entries] == [(2, 5), (3, 6), (5, 7)]


def test_empty_community_cell_is_rejected_with_the_column_name():
    parsed = parse_bytes("name;url\nПусто;\nЕсть;club1\n".encode(), "x.csv")
    assert [(r.line, r.reason) for r in parsed.rejections] == [
        (2, "the 'url' cell is empty on this row")
    ]


def test_empty_file_is_empty_not_an_error():
    parsed = parse_bytes(b"", "empty.txt")
    assert parsed.file_error is None
    assert parsed.entries == [] and parsed.rejections == [] and parsed.lines == 0


@pytest.mark.parametrize(
    "data, fragment",
    [
        (PNG_BYTES, "PNG image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4, "JPEG image"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF document"),
        (bytes((i * 37 + 11) % 256 for i in range(4000)), "not text"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, ".xls"),
    ],
)
def test_a_file_that_is_not_text_gets_one_file_error(data: bytes, fragment: str):
    parsed = parse_bytes(data, "dropped.txt")
    assert parsed.file_error is not None and fragment in parsed.file_error
    assert parsed.entries == [] and parsed.rejections == []


def test_zip_archives_are_named():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("word/document.xml", "<w/>")
    assert "Word document" in (parse_bytes(buf.getvalue(), "a.docx").file_error or "")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("groups.txt", "club1")
    assert "ZIP archive" in (parse_bytes(buf.getvalue(), "a.zip").file_error or "")


def test_workbook_sheets_hyperlinks_and_numeric_ids(small_world: World):
    sheets = {f.name: f for f in corpus(small_world)}
    book = sheets["список.xlsx"]
    parsed = parse_bytes(book.data, book.name)
    assert parsed.format == "xlsx"
    assert [e.ref.value if e.ref.kind == "id" else e.ref for e in parsed.entries][:1] == [
        Ref("name", Cast.of(small_world).named[0][1])
    ]
    by_sheet = {(r.sheet, r.line) for r in parsed.rejections}
    assert by_sheet == {("Группы", 4), ("Ещё", 2)}
    assert parsed.columns == ["Группы: Ссылка", "Ещё: column 1"]


def test_read_file_reads_from_disk(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("club1\n")
    parsed = read_file(path)
    assert parsed.name == "a.txt" and [e.ref.value for e in parsed.entries] == [1]


def test_hundred_thousand_lines_every_line_accounted_for(small_world: World):
    count = 100_000
    data, rejected = big_lines(Cast.of(small_world), count)
    parsed = parse_bytes(data, "big.txt")
    assert parsed.lines == count
    assert len(parsed.entries) == count - rejected
    assert [r.line for r in parsed.rejections] == list(range(50, count + 1, 50))
    assert len({e.ref for e in parsed.entries}) == 7  # 8 spellings, two of one name
