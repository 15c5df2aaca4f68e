"""Imports a person can follow: xlsx beside CSV, files that are neither named for what they are,
every reason of a row, grouped and capped errors, counts that add up, the database named."""

from __future__ import annotations

import io
import zipfile
from datetime import date, timedelta
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from bot.cli_import import TerminalProgress
from bot.db import Database
from bot.ingest.files import import_file
from bot.ingest.importer import import_csv
from bot.models import Customer, Order, Product, SalesDay, StockLevel, Warehouse
from tests.factories import ADMIN
from tests.harness import Harness
from tests.test_cli import stockbot

YESTERDAY = date.today() - timedelta(days=1)
FILES: dict[str, list[list[object]]] = {  # every kind, as a spreadsheet holds it (numbers as numbers)
    "catalog": [["sku", "name", "category", "price", "reorder_point"],
                ["A", "Alpha", "lips", 12.5, 3], ["B", "蓝色 Beta", "lips", 7, None]],
    "stock": [["sku", "warehouse", "on_hand"], ["A", "SH", 5], ["B", "SH", 0]],
    "customers": [["external_id", "name", "tier", "phone"], ["C1", "Li", "vip", "+8613800138000"],
                  ["C2", "Wang", "regular", None]],
    "orders": [["external_id", "customer_external_id", "sku", "qty", "status"], ["O1", "C1", "A", 2, "open"],
               ["O1", "C1", "B", 1, "open"]],
    "history": [["date", "sku", "warehouse", "sold", "on_hand"], [YESTERDAY, "A", "SH", 3, 5],
                [YESTERDAY, "B", "BJ", 1, 0]],
}


def workbook(*sheets: tuple[str, list[list[object]]], start: str | None = None) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
        if start:  # the table further down: the same rows, moved
            sheet.move_range(f"A1:E{len(rows)}", rows=int(start) - 1)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def _count(db: Database, model: type) -> int:
    async with db.read_session() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def test_every_kind_imports_from_the_first_sheet_of_an_xlsx_file(db: Database) -> None:
    for kind, rows in FILES.items():
        data = workbook((kind, rows), ("notes", [["ignored"]]))
        report = await import_file(db, kind, io.BytesIO(data), label=f"{kind}.xlsx")
        assert report.ok, (kind, report.error_lines())
        assert report.created == (1 if kind == "orders" else 2), kind
    async with db.read_session() as session:
        prices = {sku: cents for sku, cents in await session.execute(select(Product.sku, Product.price_cents))}
        assert prices == {"A": 1250, "B": 700}
        assert await session.scalar(select(Product.name).where(Product.sku == "B")) == "蓝色 Beta"
        phone = await session.scalar(select(Customer.phone).where(Customer.external_id == "C1"))
        assert phone == "+8613800138000"
        assert set(await session.scalars(select(Warehouse.code))) == {"SH", "BJ"}
        days = set(await session.execute(select(SalesDay.day, SalesDay.sold)))
        assert days == {(YESTERDAY, 3), (YESTERDAY, 1)}
    assert await _count(db, Order) == 1


async def test_xlsx_rows_are_named_by_the_row_a_spreadsheet_shows(db: Database) -> None:
    rows = [["sku", "name", "category", "price"], ["A", "Alpha", "lips", 1], ["B", "Beta", "lips", -2]]
    data = workbook(("Sheet1", rows), start="3")  # two empty rows above the table
    report = await import_file(db, "catalog", io.BytesIO(data), label="c.xlsx")
    assert report.error_lines() == ["c.xlsx:5: price -2 is negative"]
    assert await _count(db, Product) == 0


async def test_a_named_sheet_is_read_and_an_unknown_one_lists_the_sheets(db: Database) -> None:
    data = workbook(("readme", [["nothing here"]]), ("Stock list", FILES["catalog"]))
    missing = await import_file(db, "catalog", io.BytesIO(data), label="c.xlsx", sheet="stock")
    assert missing.error_lines() == ["c.xlsx:1: no sheet named 'stock'; its sheets are: readme, Stock list"]
    report = await import_file(db, "catalog", io.BytesIO(data), label="c.xlsx", sheet="Stock list")
    assert report.ok and report.created == 2


def _zip(**parts: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in parts.items():
            archive.writestr(name.replace("__", "/"), content)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), "an Excel 97-2003 workbook (.xls)"),
        (_zip(mimetype=b"application/vnd.oasis.opendocument.spreadsheet", content__xml=b"<x/>"),
         "an OpenDocument spreadsheet (.ods)"),
        (_zip(notes__txt=b"hello"), "a zip archive"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF document"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "a PNG image"),
        (b"PK\x03\x04 broken", "a damaged zip archive"),
    ],
    ids=["xls", "ods", "zip", "pdf", "png", "broken-zip"],
)
async def test_a_file_that_is_neither_csv_nor_xlsx_says_what_it_is(db: Database, data: bytes, what: str) -> None:
    report = await import_file(db, "catalog", io.BytesIO(data), label="upload")
    [line] = report.error_lines()
    assert line.startswith(f"upload:1: this is {what}") and "save it as CSV (UTF-8) or as an Excel workbook (.xlsx)" in line
    assert await _count(db, Product) == 0


async def test_every_reason_of_a_row_is_reported(db: Database) -> None:
    data = b"external_id,name,tier,phone,email\nC1,,gold,12,nobody\n"
    report = await import_csv(db, "customers", data, label="c.csv")
    [line] = report.error_lines()
    assert line.startswith("c.csv:2: name is required; tier 'gold' is not one of regular, vip; phone ")
    assert line.endswith("; email 'nobody' is not an address")


async def test_counts_add_up_a_new_zero_row_is_created_and_a_repeat_is_unchanged(db: Database) -> None:
    assert (await import_csv(db, "catalog", b"sku,name,category,price\nA,Alpha,x,1\nB,Beta,x,2\n", label="c")).ok
    stock = b"sku,warehouse,on_hand\nA,SH,5\nB,SH,0\n"
    first = await import_csv(db, "stock", stock, label="s.csv")
    assert (first.created, first.updated, first.unchanged) == (2, 0, 0)
    assert await _count(db, StockLevel) == 2
    again = await import_csv(db, "stock", b"sku,warehouse,on_hand\nA,SH,4\nB,SH,0\n", label="s.csv")
    assert (again.created, again.updated, again.unchanged) == (0, 1, 1)
    history = f"date,sku,warehouse,sold\n{YESTERDAY},A,SH,2\n{YESTERDAY},B,SH,1\n".encode()
    h1 = await import_csv(db, "history", history, label="h.csv")
    assert (h1.created, h1.updated, h1.unchanged) == (2, 0, 0)
    h2 = await import_csv(db, "history", history.replace(b"B,SH,1", b"B,SH,4"), label="h.csv")
    assert (h2.created, h2.updated, h2.unchanged) == (0, 1, 1)
    c2 = await import_csv(db, "catalog", b"sku,name,category,price\nA,Alpha,x,1\nB,Beta 2,x,2\nC,Gamma,x,3\n", label="c")
    assert (c2.created, c2.updated, c2.unchanged) == (1, 1, 1)


async def test_history_before_stock_creates_its_warehouses(db: Database) -> None:
    assert (await import_csv(db, "catalog", b"sku,name,category,price\nA,Alpha,x,1\n", label="c")).ok
    rows = "".join(f"{YESTERDAY - timedelta(days=n)},A,W{n % 3},1\n" for n in range(360))
    report = await import_csv(db, "history", ("date,sku,warehouse,sold\n" + rows).encode(), label="h.csv")
    assert report.ok and report.created == 360
    async with db.read_session() as session:
        assert set(await session.scalars(select(Warehouse.code))) == {"W0", "W1", "W2"}


async def test_one_reason_on_many_rows_is_shown_three_times_then_counted(db: Database) -> None:
    rows = "".join(f"{YESTERDAY - timedelta(days=n)},NOPE,SH,1\n" for n in range(360))
    report = await import_csv(db, "history", ("date,sku,warehouse,sold\n" + rows).encode(), label="h.csv",
                              dry_run=True)
    assert report.error_lines(50) == [
        "h.csv:2: unknown SKU 'NOPE'", "h.csv:3: unknown SKU 'NOPE'", "h.csv:4: unknown SKU 'NOPE'",
        "h.csv:5-361: 357 more row(s): unknown SKU 'NOPE'",
    ]
    assert len(report.error_lines()) == 360


def test_cli_prints_fifty_bad_rows_then_how_many_more_all_with_all_errors(tmp_path: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    rows = "".join(f"S{n},Name {n},x,-{n + 1}\n" for n in range(120))
    (tmp_path / "c.csv").write_text("sku,name,category,price\n" + rows)
    result = stockbot("import", "catalog", "c.csv", cwd=tmp_path, DATABASE_URL=db_url)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("c.csv:")]
    assert len([line for line in errors if "is negative" in line]) == 50
    assert "c.csv: and 70 more bad row(s)" in errors
    assert "c.csv: 120 bad row(s) of 120; nothing was imported" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("database: SQLite ")
    every = stockbot("import", "catalog", "c.csv", "--all-errors", cwd=tmp_path, DATABASE_URL=db_url)
    assert len([line for line in every.stderr.splitlines() if "is negative" in line]) == 120


def test_cli_imports_xlsx_names_the_database_and_warns_when_it_is_new(tmp_path: Path) -> None:
    (tmp_path / "catalog.xlsx").write_bytes(workbook(("x", FILES["catalog"])))
    (tmp_path / "elsewhere").mkdir()
    first = stockbot("import", "catalog", "../catalog.xlsx", cwd=tmp_path / "elsewhere")
    assert first.returncode == 0, first.stderr
    made = (tmp_path / "elsewhere" / "stockbot.db").resolve()
    assert f"warning: {made} did not exist; a new, empty database was created there" in first.stderr
    assert first.stdout.splitlines()[-1] == f"database: SQLite {made}"
    assert "imported 2 row(s) of catalog: 2 created, 0 updated, 0 unchanged" in first.stdout
    again = stockbot("import", "catalog", "../catalog.xlsx", cwd=tmp_path / "elsewhere")
    assert "warning" not in again.stderr and "0 created, 0 updated, 2 unchanged" in again.stdout
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    refused = stockbot("import", "catalog", "../photo.png", cwd=tmp_path / "elsewhere")
    assert refused.returncode == 1 and "../photo.png:1: this is a PNG image" in refused.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_for_a_long_import_and_never_in_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(100))
    monkeypatch.setattr("bot.cli_import.time.monotonic", lambda: float(next(clock)))
    terminal = _Terminal()
    progress = TerminalProgress("big.csv", terminal)
    progress("checked", 5000)
    progress("written", 10000)
    progress.clear()
    assert "\rbig.csv: checked 5,000 rows" in terminal.getvalue()
    assert "big.csv: written 10,000 rows" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r")  # the line is wiped before the summary
    pipe = io.StringIO()
    quiet = TerminalProgress("big.csv", pipe)
    quiet("checked", 5000)
    quiet.clear()
    assert pipe.getvalue() == ""


async def test_admin_sends_an_xlsx_file_in_chat(bot_harness: Harness) -> None:
    h = bot_harness
    await h.act(h.sandbox.send_document(ADMIN, "货品.xlsx", workbook(("x", FILES["catalog"])), caption="catalog"))
    assert "2 created" in h.last(ADMIN).plain_text
    await h.act(h.sandbox.send_document(ADMIN, "old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600),
                                        caption="catalog"))
    assert "old.xls:1: this is an Excel 97-2003 workbook (.xls)" in h.last(ADMIN).plain_text
