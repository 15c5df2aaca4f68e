"""CSV files as spreadsheet programs save them: encodings (UTF-16 with or without a BOM), `;` with
decimal commas, tabs, and every bad row named whatever the encoding."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.ingest.importer import import_csv
from bot.models import Customer, Product
from tests.factories import ADMIN
from tests.harness import Harness

CATALOG = (
    "sku,name,category,price,attributes\n"
    "LIP-1,唇釉 豆沙色,口红,89.90,\"colour=rose;unit=ml\"\n"
    "LIP-2,\"Velvet, Red\",lips,12.50,\n"
    "SHA-1,洗发水 Silk,护发,5,\n"
)
EXPECTED = {
    "LIP-1": ("唇釉 豆沙色", "口红", 8990, {"colour": "rose", "unit": "ml"}),
    "LIP-2": ("Velvet, Red", "lips", 1250, {}),
    "SHA-1": ("洗发水 Silk", "护发", 500, {}),
}
SEMICOLONS = (  # Excel in a locale whose decimal mark is a comma
    "sku;name;category;price;attributes\r\n"
    "LIP-1;唇釉 豆沙色;口红;89,90;\"colour=rose;unit=ml\"\r\n"
    "LIP-2;Velvet, Red;lips;12,50;\r\n"
    "SHA-1;洗发水 Silk;护发;5;\r\n"
)
TABS = (  # Excel's "Unicode Text": tab-separated, written as UTF-16LE with a BOM
    "sku\tname\tcategory\tprice\tattributes\r\n"
    "LIP-1\t唇釉 豆沙色\t口红\t89.90\tcolour=rose;unit=ml\r\n"
    "LIP-2\t\"Velvet, Red\"\tlips\t12.50\t\r\n"
    "SHA-1\t洗发水 Silk\t护发\t5\t\r\n"
)


async def _products(db: Database) -> dict[str, tuple]:
    async with db.read_session() as session:
        return {p.sku: (p.name, p.category, p.price_cents, p.attributes) for p in await session.scalars(select(Product))}


@pytest.mark.parametrize(
    ("text", "encoding", "label"),
    [
        (CATALOG, "utf-8", "UTF-8"),
        ("\ufeff" + CATALOG, "utf-8", "UTF-8"),
        (CATALOG, "gbk", "GBK"),  # Excel on Chinese Windows
        (CATALOG, "utf-16", "UTF-16"),  # the machine's byte order, with a BOM
        ("\ufeff" + CATALOG, "utf-16-be", "UTF-16"),
        (CATALOG, "utf-16-le", "UTF-16"),  # no BOM, as some tools write it
        (CATALOG, "utf-16-be", "UTF-16"),
        ("\ufeff" + TABS, "utf-16-le", "UTF-16"),  # Excel's "Unicode Text"
        (TABS, "utf-16-le", "UTF-16"),
        (TABS, "utf-8", "UTF-8"),
        (SEMICOLONS, "utf-8", "UTF-8"),
        (SEMICOLONS, "gbk", "GBK"),
    ],
    ids=["utf8", "utf8-bom", "gbk", "utf16-bom", "utf16be-bom", "utf16le-no-bom", "utf16be-no-bom",
         "unicode-text", "unicode-text-no-bom", "tabs-utf8", "semicolon-decimal-comma", "semicolon-gbk"],
)
async def test_a_spreadsheets_file_imports_the_same_data_as_utf8(db: Database, text: str, encoding: str, label: str) -> None:
    report = await import_csv(db, "catalog", text.encode(encoding), label="catalog.csv")
    assert report.ok, report.error_lines()
    assert report.encoding == label and report.created == 3
    assert await _products(db) == EXPECTED


async def test_every_bad_row_of_a_gbk_file_is_named(db: Database) -> None:
    rows = [b"sku,name,category,price", "LIP-1,唇釉,口红,1".encode("gbk"),
            b"LIP-2,Bad \x80 byte,lips,1",  # not GBK
            "LIP-3,豆沙色,口红,-1".encode("gbk"),
            b"LIP-4,\xff\xfe\xfd,lips,1",  # not GBK either
            "LIP-5,正红色,口红,abc".encode("gbk")]
    rows += [f"GOOD-{n},洗发水 {n},护发,{n}".encode("gbk") for n in range(30)]
    report = await import_csv(db, "catalog", b"\r\n".join(rows) + b"\r\n", label="c.csv")
    assert report.error_lines() == [
        "c.csv:3: not GBK text",
        "c.csv:4: price -1 is negative",
        "c.csv:5: not GBK text",
        "c.csv:6: price 'abc' is not a number",
    ]
    assert await _products(db) == {}


async def test_every_bad_row_of_a_utf16_file_without_a_bom_is_named(db: Database) -> None:
    rows = ["sku\tname\tcategory\tprice", "LIP-1\t唇釉\t口红\t1", "LIP-2\t豆沙色\t口红\t-1",
            "LIP-3\tBad ", "LIP-4\t正红色\t口红\t2"]
    encoded = [row.encode("utf-16-le") for row in rows]
    encoded[3] += b"\x00\xd8" + "\tlips\t1".encode("utf-16-le")  # a lone surrogate: not UTF-16
    report = await import_csv(db, "catalog", "\r\n".encode("utf-16-le").join(encoded), label="c.txt")
    assert report.encoding == "UTF-16"
    assert report.error_lines() == ["c.txt:3: price -1 is negative", "c.txt:4: not UTF-16 text"]
    assert await _products(db) == {}


async def test_a_header_in_no_accepted_layout_is_named_and_nothing_is_written(db: Database) -> None:
    data = "sku|name|category|price\nA|Alpha|x|1\n".encode("utf-16-le")
    report = await import_csv(db, "catalog", data, label="c.csv")
    assert report.error_lines() == [
        "c.csv:1: missing column sku, name, category, price; unknown column 'sku|name|category|price'"
    ]
    assert await _products(db) == {}


async def test_text_in_no_known_encoding_names_each_bad_row(db: Database) -> None:
    data = "sku,name,category,price\nA,Café,x,1\nB,Plain,x,1\nC,Crème,x,1\n".encode("latin-1")
    report = await import_csv(db, "catalog", data, label="c.csv")
    assert report.error_lines() == ["c.csv:2: not UTF-8 text", "c.csv:4: not UTF-8 text"]


async def test_gbk_found_even_when_the_first_rows_are_plain_ascii(db: Database) -> None:
    lines = ["external_id,name,tier"] + [f"C{n},Customer {n},regular" for n in range(4000)] + ["C-LI,李娜,vip"]
    report = await import_csv(db, "customers", "\n".join(lines).encode("gbk"), label="customers.csv")
    assert report.ok, report.error_lines()[:3]
    async with db.read_session() as session:
        assert await session.scalar(select(Customer.name).where(Customer.external_id == "C-LI")) == "李娜"


async def test_a_decimal_comma_is_only_read_in_a_semicolon_file(db: Database) -> None:
    report = await import_csv(db, "catalog", b'sku,name,category,price\nA,Alpha,x,"1,50"\n', label="c.csv")
    assert report.error_lines() == ["c.csv:2: price '1,50' is not a number"]
    report = await import_csv(db, "catalog", b"sku;name;category;price\nA;Alpha;x;1.234,50\n", label="c.csv")
    assert report.error_lines() == ["c.csv:2: price '1.234,50' is not a number"]  # no thousands marks


async def test_admin_sends_a_gbk_customers_file_in_chat(bot_harness: Harness) -> None:
    h = bot_harness
    data = "external_id,name,tier,timezone\nC1,李娜,vip,Asia/Shanghai\nC2,王伟,regular,\n".encode("gbk")
    await h.act(h.sandbox.send_document(ADMIN, "客户.csv", data, caption="customers"))
    assert "2 created" in h.last(ADMIN).plain_text
    bad = "external_id,name,tier,timezone\nC3,张三,vip,Asia/Beijing\nC4,李四,gold,\n".encode("gbk")
    await h.act(h.sandbox.send_document(ADMIN, "客户.csv", bad, caption="customers"))
    failed = h.last(ADMIN).plain_text
    assert "客户.csv:2: timezone 'Asia/Beijing' is not an IANA time zone" in failed
    assert "客户.csv:3: tier 'gold' is not one of regular, vip" in failed
    async with h.db.read_session() as session:
        names = {eid: zone for eid, zone in await session.execute(select(Customer.external_id, Customer.timezone))}
    assert names == {"C1": "Asia/Shanghai", "C2": None}
