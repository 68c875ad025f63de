"""Rows of an .xlsx workbook as text cells, hyperlinks included (openpyxl)."""

from __future__ import annotations

import io
import warnings
import zipfile
from datetime import date, datetime

from vk_pipeline.grouplists.decode import NotText


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        # Excel stores every number as a float: group id 123 arrives as 123.0.
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).replace("\x00", "")


def workbook_rows(data: bytes) -> list[tuple[str, list[tuple[int, list[str]]]]]:
    """[(sheet title, [(row number, cells)])] for every sheet that has any non-empty row.

    A cell shown as "Кофейня Зерно" but linked to vk.com/zerno reads as both, so the link counts.
    Not read-only mode: openpyxl only exposes hyperlinks when it loads the whole sheet.
    """
    import openpyxl

    try:
        with warnings.catch_warnings():
            # openpyxl warns about styles and data validation it does not keep; irrelevant here.
            warnings.simplefilter("ignore")
            workbook = openpyxl.load_workbook(io.BytesIO(data), data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise NotText(f"this .xlsx workbook cannot be opened ({type(exc).__name__})") from None
    sheets: list[tuple[str, list[tuple[int, list[str]]]]] = []
    try:
        for ws in workbook.worksheets:
            rows: list[tuple[int, list[str]]] = []
            for row in ws.iter_rows():
                cells = []
                for cell in row:
                    text = _cell_text(cell.value)
                    link = getattr(cell, "hyperlink", None)
                    target = getattr(link, "target", None) if link is not None else None
                    if target and target not in text:
                        text = f"{text} {target}".strip()
                    cells.append(text)
                if any(c.strip() for c in cells):
                    rows.append((row[0].row, cells))
            if rows:
                sheets.append((ws.title, rows))
    finally:
        workbook.close()
    return sheets
