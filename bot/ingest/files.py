"""Import a file of any accepted format: CSV as it is, xlsx through its CSV form; anything else
is one bad line 1 that says what the file is (CLI, chat and play share this entry)."""

from __future__ import annotations

from typing import Any, BinaryIO

from bot.db import Database
from bot.ingest.formats import XLSX, NotATable, sniff
from bot.ingest.importer import ImportReport, Problem, import_csv
from bot.ingest.xlsx import SheetProblem, to_csv


async def import_file(
    db: Database, kind: str, binary: BinaryIO, *, label: str, sheet: str | None = None, dry_run: bool = False,
    **options: Any,
) -> ImportReport:
    """`import_csv` for a CSV or xlsx file (the first sheet, or `sheet`)."""
    try:
        if sniff(binary) != XLSX:
            return await import_csv(db, kind, binary, label=label, dry_run=dry_run, **options)
        with to_csv(binary, sheet) as converted:
            report = await import_csv(db, kind, converted, label=label, dry_run=dry_run, **options)
        report.encoding = "xlsx"
        return report
    except (NotATable, SheetProblem) as refused:
        report = ImportReport(kind=kind, label=label, dry_run=dry_run)
        report.problems.append(Problem(1, str(refused)))
        return report
