"""An xlsx sheet as the CSV text the importer reads, so both formats share one set of checks.

python-calamine reads the workbook (Rust, read-only: ~10x openpyxl's speed on a 100k-row sheet).
Each sheet row becomes one CSV line with the same number, so `FILE:LINE` names the row a
spreadsheet shows: rows above the sheet's first used row are written as empty lines (the
importer skips blank lines above the header), and a newline inside a cell becomes a vertical tab, which the importer
refuses as a control character on the right line rather than shifting every line after it.
"""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import date, datetime, time, timedelta
from typing import IO, Any, BinaryIO

from python_calamine import CalamineError, CalamineWorkbook

SPOOL_IN_MEMORY = 8 * 1024 * 1024  # larger converted sheets go to a temporary file


class SheetProblem(ValueError):
    """The workbook or the sheet asked for cannot be read; `str()` says why."""


def sheet_names(binary: BinaryIO) -> list[str]:
    return list(_open(binary).sheet_names)


def to_csv(binary: BinaryIO, sheet: str | None = None) -> IO[bytes]:
    """The sheet (the first, or the one named `sheet`) as UTF-8 CSV in a temporary file, at its start."""
    workbook = _open(binary)
    names = list(workbook.sheet_names)
    if not names:
        raise SheetProblem("the workbook has no sheets")
    if sheet is None:
        chosen = workbook.get_sheet_by_index(0)
    elif sheet in names:
        chosen = workbook.get_sheet_by_name(sheet)
    else:
        raise SheetProblem(f"no sheet named {sheet!r}; its sheets are: {', '.join(names)}")
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
    text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
    writer = csv.writer(text, lineterminator="\n")
    # The grid from A1 (iter_rows pads rows above the used range but not columns to its left,
    # depending on the version): row N of the sheet is line N, and columns left of the table go.
    first_column = (chosen.start or (0, 0))[1]
    for row in chosen.to_python(skip_empty_area=False):
        writer.writerow([_cell(value) for value in row[first_column:]])
    text.flush()
    text.detach()
    spool.seek(0)
    return spool  # type: ignore[return-value]


def _open(binary: BinaryIO) -> Any:
    binary.seek(0)
    try:
        return CalamineWorkbook.from_filelike(binary)
    except (CalamineError, ValueError, OSError) as exc:
        raise SheetProblem(f"the xlsx workbook cannot be read ({_first_line(exc)}); save it again from "
                           f"the spreadsheet program, as .xlsx or CSV (UTF-8)") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _cell(value: Any) -> str:
    """A cell as the text a person typed: 5 not 5.0, a date as YYYY-MM-DD."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time | timedelta):
        return str(value)
    return str(value).replace("\r\n", "\v").replace("\n", "\v").replace("\r", "\v")
