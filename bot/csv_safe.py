"""The one CSV writer for every file the bot sends: safe to open in a spreadsheet.

A cell a spreadsheet program would run as a formula (`=HYPERLINK(...)`, `@SUM(...)`,
`=cmd|' /C calc'!A0`) can leak data or start programs on the reader's machine, and supplier, SKU,
product and warehouse names all come from outside (imports, the API). So a text cell that would
start with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, which spreadsheets
take as "this is text". Plain numbers (`-3`, `+2.5`, `1e3`) stay numbers.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """`value` as written to a CSV cell: text that a spreadsheet would run is made text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


class SafeCsvWriter:
    """`csv.writer` whose every cell passes through `safe_cell`."""

    def __init__(self, out: TextIO) -> None:
        self._writer = csv.writer(out, lineterminator="\n")

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_document(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> bytes:
    """A whole file: UTF-8 with a BOM, so spreadsheet programs (Excel on Chinese Windows) read
    Chinese names as such. Rows may be a generator: they are written one at a time."""
    out = io.StringIO()
    writer = SafeCsvWriter(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")
