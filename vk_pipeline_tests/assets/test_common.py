"""The previews every partition's materialization carries (markdown the UI renders)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pandas as pd

from vk_pipeline.assets.common import PREVIEW_WIDTH, markdown_table, preview

UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def cells(line: str) -> list[str]:
    return [c.strip() for c in UNESCAPED_PIPE.split(line)[1:-1]]


def test_markdown_table_keeps_one_cell_per_value_whatever_the_text():
    text = "a | b\nnext line\\ end"
    table = markdown_table(
        ["id", "text", "rate", "at"],
        [
            (1, text, 0.000123456, datetime(2026, 12, 7, tzinfo=UTC)),
            (2, None, float("nan"), pd.NaT),
        ],
    )
    header, rule, *rows = table.splitlines()
    assert cells(header) == ["id", "text", "rate", "at"]
    assert len(cells(rule)) == 4 and set(rule) <= {"|", "-"}
    assert len(rows) == 2 and all(len(cells(r)) == 4 for r in rows)
    first, second = (cells(r) for r in rows)
    assert first[0] == "1" and first[2] == "0.000123456" and first[3].startswith("2026-12-07")
    # The pipe and the backslash escaped, the line break a space: one row, the text readable.
    assert first[1] == r"a \| b next line\\ end"
    assert second == ["2", "", "", ""]


def test_preview_cuts_long_texts_and_keeps_the_named_columns_it_has():
    df = pd.DataFrame(
        {"id": range(8), "text": ["x" * 200] * 8, "other": range(8)},
    )
    header, _, *rows = preview(df, ["id", "text", "missing"], rows=5).value.splitlines()
    assert cells(header) == ["id", "text"]
    assert [cells(r)[0] for r in rows] == ["0", "1", "2", "3", "4"]
    assert all(cells(r)[1] == "x" * PREVIEW_WIDTH + "…" for r in rows)


def test_a_preview_of_row_dicts_reads_as_the_preview_of_their_frame():
    """The crawl steps pass the rows they built; the table is the one their frame gives."""
    rows = [
        {"owner_id": -7, "id": i, "date": datetime(2026, 12, 7, 3, i, tzinfo=UTC), "text": "t|x"}
        for i in range(8)
    ]
    columns = ["owner_id", "id", "date", "text", "missing"]
    from_rows = preview(rows, columns).value
    assert from_rows == preview(pd.DataFrame.from_records(rows), columns).value
    assert len(from_rows.splitlines()) == 2 + 5
