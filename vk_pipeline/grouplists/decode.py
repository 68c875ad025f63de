"""Bytes of a dropped file -> text (or a spreadsheet), or one reason it is neither.

Files arrive as people's tools write them: UTF-8 with or without BOM, UTF-16 with BOM (Excel's
"Unicode text"), cp1251 (Excel in a Russian locale), .xlsx workbooks. A picture or an archive
dropped by mistake is recognised by its signature and named in the error.
"""

from __future__ import annotations

import codecs
import io
import zipfile
from dataclasses import dataclass

# Signatures of files people drop by mistake, and what to call them in the error.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", ""),  # checked separately: "BM" can start a text line
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF-", "a PDF document"),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "an old Office file (.xls/.doc): save it as .xlsx or CSV",
    ),
    (b"{\\rtf", "an RTF document: save it as plain text"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x7fELF", "a program (ELF)"),
    (b"\x00\x00\x01\x00", "an icon"),
    (b"OggS", "an audio file"),
    (b"ID3", "an MP3 file"),
    (b"\x1aE\xdf\xa3", "a video file"),
    (b"SQLite format 3\x00", "an SQLite database"),
)
_ZIP = b"PK\x03\x04"
# Share of control characters above which decoded "text" is really binary data. A text file with
# a stray NUL keeps its other lines; those lines alone are rejected.
_BINARY_SHARE = 0.05


class NotText(Exception):
    """The file as a whole cannot be read as a group list; the message says what it is."""


# A workbook is a zip: its directory says how much its members unpack to, before any is opened.
MAX_XLSX_UNPACKED_BYTES = 64 * 1024 * 1024
MAX_ZIP_MEMBERS = 2_000


@dataclass(frozen=True)
class Decoded:
    kind: str  # "text" or "xlsx"
    text: str = ""
    encoding: str | None = None
    # UTF-8 with a few invalid bytes: those lines hold U+FFFD and are rejected one by one.
    damaged_lines: bool = False


def decode(data: bytes) -> Decoded:
    """Text (with the encoding it was read as) or the marker for a workbook; raises `NotText`."""
    if data.startswith(_ZIP):
        return _zip_kind(data)
    for magic, what in _MAGIC:
        if what and data.startswith(magic):
            raise NotText(f"this is {what}, not a list of groups")
    if data.startswith(b"RIFF") and data[8:12] in (b"WEBP", b"WAVE", b"AVI "):
        raise NotText("this is a media file (RIFF), not a list of groups")
    text, encoding, damaged = _text(data)
    _check_textual(text, data)
    return Decoded("text", text, encoding, damaged)


def _zip_kind(data: bytes) -> Decoded:
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise NotText("this is a damaged ZIP archive, not a list of groups") from None
    names = {i.filename for i in infos}
    if "xl/workbook.xml" in names:
        check_unpacked_size(infos)
        return Decoded("xlsx", encoding=None)
    if "word/document.xml" in names:
        raise NotText("this is a Word document: save the list as .txt, .csv or .xlsx")
    if "content.xml" in names:
        raise NotText("this is an OpenDocument file: save it as .xlsx or CSV")
    raise NotText("this is a ZIP archive, not a list of groups")


def check_unpacked_size(infos: list[zipfile.ZipInfo]) -> None:
    """Refuse a workbook whose directory promises more than the caps (a zip bomb), unopened."""
    if len(infos) > MAX_ZIP_MEMBERS:
        raise NotText(
            f"this workbook holds {len(infos):,} parts; a group-list workbook may hold at most "
            f"{MAX_ZIP_MEMBERS:,}"
        )
    unpacked = sum(i.file_size for i in infos)
    if unpacked > MAX_XLSX_UNPACKED_BYTES:
        raise NotText(
            f"this workbook unpacks to {unpacked / 2**20:,.0f} MB; a group-list workbook may "
            f"unpack to at most {MAX_XLSX_UNPACKED_BYTES // 2**20} MB"
        )


def _text(data: bytes) -> tuple[str, str, bool]:
    if data.startswith(codecs.BOM_UTF32_LE) or data.startswith(codecs.BOM_UTF32_BE):
        return data.decode("utf-32", errors="replace"), "utf-32", False
    if data.startswith(codecs.BOM_UTF8):
        text = data[3:].decode("utf-8", errors="replace")
        return text, "utf-8-sig", "\ufffd" in text
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        return data.decode("utf-16", errors="replace"), "utf-16", False
    utf16 = _bomless_utf16(data[:4096])
    if utf16:
        return data.decode(utf16, errors="replace"), utf16, False
    try:
        return data.decode("utf-8"), "utf-8", False
    except UnicodeDecodeError:
        pass
    if _mostly_utf8(data):
        # A UTF-8 file with a few damaged bytes: read as UTF-8; the damaged lines are rejected
        # alone rather than the whole file turning into cp1251 mojibake.
        return data.decode("utf-8", errors="replace"), "utf-8", True
    # Not UTF-8: the other encoding people's tools write here is Windows-1251 (Excel, Notepad in
    # a Russian locale). cp1251 leaves one byte undefined; replace it rather than give up.
    return data.decode("cp1251", errors="replace"), "cp1251", False


def _mostly_utf8(data: bytes) -> bool:
    """Most lines with non-ASCII bytes are valid UTF-8 (cp1251 Cyrillic practically never is)."""
    valid = invalid = 0
    for line in data.splitlines():
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
            valid += 1
        except UnicodeDecodeError:
            invalid += 1
    return valid > 0 and valid >= invalid


def _bomless_utf16(head: bytes) -> str | None:
    """UTF-16 written without a BOM: every other byte of ASCII text is NUL."""
    if len(head) < 8:
        return None
    even = head[0::2].count(0) / len(head[0::2])
    odd = head[1::2].count(0) / len(head[1::2])
    if odd > 0.7 and even < 0.1:
        return "utf-16-le"
    if even > 0.7 and odd < 0.1:
        return "utf-16-be"
    return None


def _check_textual(text: str, data: bytes) -> None:
    sample = text[:65536]
    if not sample:
        return
    control = sum(1 for ch in sample if (ch < " " and ch not in "\t\n\r\f\v") or ch == "\x7f")
    replaced = sample.count("\ufffd")
    if (control + replaced) / len(sample) > _BINARY_SHARE:
        what = "a BMP image" if data.startswith(b"BM") else "binary data"
        raise NotText(f"this is {what}, not text: not a list of groups")
