"""A corpus of group-list files shaped like the ones people drop, built from an emulator world.

Every file is described line by line: which communities a line names (by the world's ids), or the
fragment of the reason it must be rejected with. Expected outcomes are derived from those
descriptions, never typed in separately, so a file and its expectation cannot drift apart.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vk_pipeline.emulator import World

UNKNOWN_ID = 99_999_999  # far above any id the emulator hands out (they start at 100001)
PNG_BYTES = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)


@dataclass(frozen=True)
class L:
    """One line: its text, the world ids it names, or a fragment of its rejection reason."""

    text: str
    ids: tuple[int, ...] = ()
    reject: str | None = None


@dataclass
class CorpusFile:
    name: str
    data: bytes
    groups: list[int]  # distinct, in order of first mention
    rejected: dict[int, list[str]]  # line -> reason fragments (one per rejected reference)
    duplicates: int = 0
    file_error: str | None = None
    sheets: dict[str, dict[int, list[str]]] = field(default_factory=dict)

    def write(self, folder: Path) -> Path:
        path = folder / self.name
        path.write_bytes(self.data)
        return path


def _expect(name: str, data: bytes, lines: Sequence[L], *, first_line: int = 1) -> CorpusFile:
    groups: list[int] = []
    mentions = 0
    rejected: dict[int, list[str]] = {}
    for number, line in enumerate(lines, start=first_line):
        for gid in line.ids:
            mentions += 1
            if gid not in groups:
                groups.append(gid)
        if line.reject is not None:
            rejected.setdefault(number, []).append(line.reject)
    return CorpusFile(name, data, groups, rejected, duplicates=mentions - len(groups))


def _text(lines: Sequence[L], newline: str = "\n") -> str:
    return newline.join(line.text for line in lines) + newline


@dataclass(frozen=True)
class Cast:
    """The communities of a world the corpus is written about."""

    named: list[tuple[int, str]]  # (id, screen name) of communities with a chosen address
    plain: list[int]  # communities left at the default club<ID> address
    banned: int
    deleted: int

    @classmethod
    def of(cls, world: World) -> Cast:
        named, plain = [], []
        banned = deleted = 0
        for gid in world.group_ids():
            kind = world.group_kind(gid)
            if kind == "banned":
                banned = gid
            elif kind == "deleted":
                deleted = gid
            elif world.group(gid)["screen_name"].startswith("club"):
                plain.append(gid)
            else:
                named.append((gid, world.group(gid)["screen_name"]))
        assert len(named) >= 3 and len(plain) >= 2 and banned and deleted, "world too small"
        return cls(named, plain, banned, deleted)


def spellings(c: Cast) -> CorpusFile:
    (n1, s1), (n2, s2), (n3, s3) = c.named[:3]
    p1, p2 = c.plain[:2]
    lines = [
        L("# every way people write a community"),
        L(str(p1), (p1,)),
        L(f"-{p2}", (p2,)),
        L(f"club{n1}", (n1,)),
        L(f"public{n2}", (n2,)),
        L(f"event{n3}", (n3,)),
        L(""),
        L(f"@{s1}", (n1,)),
        L(s2.upper(), (n2,)),
        L(f"https://vk.com/{s1}", (n1,)),
        L(f"http://www.vk.com/{s2}/", (n2,)),
        L(f"m.vk.ru/{s3}?from=search#wall", (n3,)),
        L(f"vk.ru/public{c.banned}/", (c.banned,)),
        L(f"VK.COM/CLUB{c.deleted}", (c.deleted,)),
        L(f"https://vk.com/wall-{p1}_17", (p1,)),
        L(f"https://m.vk.com/{s1}#comments", (n1,)),
        L(f"[club{p2}|Сообщество]", (p2,)),
        L(f"{p1}, club{n1} ; public{n2}", (p1, n1, n2)),
        L(f"Кофейня Зерно https://vk.com/{s3}", (n3,)),
        L(f"vk.com/{s2}   # наш любимый", (n2,)),
        L("   "),
    ]
    return _expect("spellings.txt", _text(lines).encode(), lines)


def rejects(c: Cast) -> CorpusFile:
    (n1, s1) = c.named[0]
    lines = [
        L("id123", reject="user's profile"),
        L("https://vk.com/id1", reject="user's profile"),
        L("https://t.me/zerno_coffee", reject="t.me"),
        L("www.example.com/vk/club1", reject="example.com"),
        L("Кофейня на углу", reject="names no VK community"),
        L("0", reject="0 is not a community id"),
        L("club0", reject="0 is not a community id"),
        L("club-5", reject="positive"),
        L("vk.com/wall123_456", reject="user's wall"),
        L("vk.com/feed", reject="VK service page"),
        L("+79161234567", reject="phone number"),
        L(f"zerno\x00{s1}", reject="NUL"),
        L("x" * 5000, reject="5,000 characters"),
        L("no_such_community_zz", reject="VK knows no community"),
        L(str(UNKNOWN_ID), reject=f"no community with id {UNKNOWN_ID}"),
        L(s1, (n1,)),
    ]
    return _expect("rejects.txt", _text(lines).encode(), lines)


def excel_ru(c: Cast) -> CorpusFile:
    """Excel in a Russian locale: cp1251, `;`, CRLF, a header, the link in the second column."""
    (n1, s1), (n2, s2) = c.named[:2]
    p1 = c.plain[0]
    lines = [
        L("Название;Ссылка;Подписчики"),
        L(f"Кофейня «Зерно»;https://vk.com/{s1};1200", (n1,)),
        L(f'"Кофе; и всё";vk.com/club{p1};300', (p1,)),
        L("Пусто;;5", reject="cell is empty"),
        L(f"Ещё одна;@{s2};7", (n2,)),
        L(";;"),
    ]
    return _expect("кофейни.csv", _text(lines, "\r\n").encode("cp1251"), lines)


def utf16(c: Cast) -> CorpusFile:
    (n1, s1) = c.named[0]
    lines = [
        L(f"club{c.plain[0]}", (c.plain[0],)),
        L(f"vk.com/{s1}", (n1,)),
        L("id5", reject="profile"),
    ]
    return _expect("unicode.txt", _text(lines, "\r\n").encode("utf-16"), lines)


def utf8_bom(c: Cast) -> CorpusFile:
    lines = [L(str(c.plain[1]), (c.plain[1],)), L(f"@{c.named[1][1]}", (c.named[1][0],))]
    return _expect("bom.txt", b"\xef\xbb\xbf" + _text(lines).encode(), lines)


def old_mac(c: Cast) -> CorpusFile:
    lines = [
        L(f"public{c.plain[0]}", (c.plain[0],)),
        L(f"vk.com/{c.named[2][1]}", (c.named[2][0],)),
    ]
    return _expect("classic-mac.txt", _text(lines, "\r").encode(), lines)


def tsv_export(c: Cast) -> CorpusFile:
    """A TSV export whose community column is the last; the counts beside it are not ids."""
    lines = [L("name\tmembers\tvk")]
    for gid, screen in c.named[:3]:
        lines.append(L(f"Сообщество {gid}\t{gid + 7}\thttps://vk.com/{screen}", (gid,)))
    lines.append(L(f"Без ссылки\t{c.plain[0]}\t", reject="cell is empty"))
    return _expect("export.tsv", _text(lines).encode(), lines)


def duplicates(c: Cast) -> CorpusFile:
    gid, screen = c.named[0]
    lines = [
        L(str(gid), (gid,)),
        L(f"club{gid}", (gid,)),
        L(f"@{screen}", (gid,)),
        L(str(gid), (gid,)),
    ]
    return _expect("duplicates.txt", _text(lines).encode(), lines)


def empty() -> CorpusFile:
    return CorpusFile("empty.txt", b"", [], {})


def picture() -> CorpusFile:
    return CorpusFile("IMG_0042.png", PNG_BYTES, [], {}, file_error="PNG image")


def workbook(c: Cast) -> CorpusFile:
    """Two sheets: links behind display text, ids typed as numbers, one empty link cell."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Группы"
    ws.append(["Название", "Ссылка", "Подписчики"])
    (n1, s1), (n2, _s2) = c.named[:2]
    ws.append(["Зерно", "Зерно", 1500])
    ws["B2"].hyperlink = f"https://vk.com/{s1}"
    ws.append(["Второе", n2, 12])  # an id typed as a number (Excel keeps it as 100002.0)
    ws.append(["Пустое", None, 3])
    ws.append(["Забанено", f"vk.com/club{c.banned}", 0])
    second = wb.create_sheet("Ещё")
    second.append([c.plain[0]])
    second.append(["id77"])
    buf = io.BytesIO()
    wb.save(buf)
    return CorpusFile(
        "список.xlsx",
        buf.getvalue(),
        [n1, n2, c.banned, c.plain[0]],
        {},
        sheets={"Группы": {4: ["cell is empty"]}, "Ещё": {2: ["user's profile"]}},
    )


def corpus(world: World) -> list[CorpusFile]:
    c = Cast.of(world)
    return [
        spellings(c),
        rejects(c),
        excel_ru(c),
        utf16(c),
        utf8_bom(c),
        old_mac(c),
        tsv_export(c),
        duplicates(c),
        workbook(c),
        empty(),
        picture(),
    ]


def big_lines(c: Cast, count: int) -> tuple[bytes, int]:
    """`count` lines of mixed spellings (plus one rejected line in 50); returns the bytes and
    the number of rejected lines."""
    (n1, s1), (n2, s2), (_n3, s3) = c.named[:3]
    cycle = [
        f"https://vk.com/{s1}",
        f"club{c.plain[0]}",
        f"@{s2}",
        f"-{c.plain[1]}",
        f"m.vk.ru/{s3}/?from=feed",
        f"vk.com/wall-{n1}_{{i}}",
        f"public{n2}",
        s3.upper(),
    ]
    out = []
    rejected = 0
    for i in range(count):
        if i % 50 == 49:
            out.append(f"vk.com/id{i}")
            rejected += 1
        else:
            out.append(cycle[i % len(cycle)].replace("{i}", str(i)))
    return ("\n".join(out) + "\n").encode(), rejected
