"""`make demo`'s table: names in their columns whatever they hold, cut with an ellipsis."""

from __future__ import annotations

import wcwidth

from vk_pipeline.demo import NAME_COLUMNS, fit, table_lines

FAMILY = "👨\u200d👩\u200d👧"  # one glyph of two columns, five code points


def test_a_short_name_is_padded_and_a_long_one_cut_with_an_ellipsis():
    assert fit("Кофейня Зерно", 16) == "Кофейня Зерно   "
    assert fit("Путешествия по России Казани и дальше", 20) == "Путешествия по Росс…"


def test_wide_and_joined_characters_count_by_display_width():
    assert fit("☕" * 20, 10) == "☕☕☕☕… "  # 8 columns of cups, the ellipsis, a space
    assert fit(f"ab{FAMILY}cd", 5) == f"ab{FAMILY}…"  # the family is kept whole
    assert fit(f"ab{FAMILY}cd", 4) == "ab… "  # or left out whole, never split at a joiner
    assert fit("Cafe\u0301 ok", 9) == "Cafe\u0301 ok  "  # a combining accent takes no column


def test_control_characters_do_not_break_the_line():
    assert fit("a\nb\tc\x1b[31m", 8) == "a b c […"  # the escape cannot colour the table


def test_every_row_of_the_table_is_as_wide_as_the_header():
    rows = [
        (100001, "Кофейня ☕ Зерно ☕☕☕☕☕☕☕☕☕☕", "open", 10, 20, 3, 0),
        (100002, f"Семья {FAMILY * 12}", "open", 1, 2, 3, 4),
        (100003, "", "banned", 0, 0, 0, 0),
        (100004, "x" * 80, "deleted", 0, 0, 0, 0),
    ]
    lines = table_lines(rows, {"100001": {"requests": 2.5, "seconds": 1.0}})
    widths = {wcwidth.wcswidth(line) for line in lines}
    assert widths == {len(lines[1])}  # the dashes under the header
    assert f"100001  {fit(rows[0][1], NAME_COLUMNS)} open" in lines[2]
    assert "…" in lines[2] and "…" in lines[5]
