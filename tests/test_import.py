
from sqlalchemy import func, select

from bot.db import Database
from bot.ingest.importer import import_csv
from bot.models import Customer, Order, OrderLine, Product, StockEvent, StockLevel
from tests.factories import add_product, add_sold_out


async def _import(db: Database, kind: str, text: str, **options):
    return await import_csv(db, kind, text.encode("utf-8"), label=f"{kind}.csv", **options)


async def _count(db: Database, model) -> int:
    async with db.read_session() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_catalog_with_bom_and_chinese_imports_with_decimal_prices(db: Database) -> None:
    data = "\ufeffsku,name,category,price,brand,reorder_point,attributes\n" \
           "LIP-1,唇釉 豆沙色,lips,89.90,Rosa,5,colour=rose;unit=ml\n" \
           "LIP-2,\"Velvet, Red\",lips,12,,,\n"
    report = await _import(db, "catalog", data)
    assert report.ok, report.error_lines()
    assert (report.created, report.updated) == (2, 0)
    async with db.read_session() as session:
        products = {p.sku: p for p in await session.scalars(select(Product))}
    assert products["LIP-1"].name == "唇釉 豆沙色"
    assert str(products["LIP-1"].price) == "89.90"
    assert products["LIP-1"].attributes == {"colour": "rose", "unit": "ml"}
    assert products["LIP-2"].name == "Velvet, Red" and products["LIP-2"].reorder_point == 0


async def test_every_bad_row_is_reported_with_its_line_and_nothing_is_written(db: Database) -> None:
    data = (
        "sku,name,category,price,reorder_point,attributes\n"
        "A,Alpha,lips,1.00,,\n"
        "B,Beta,lips,-2,,\n"  # line 3
        "\n"
        "A,Again,lips,1,,\n"  # line 5: duplicate
        "C,,lips,1,,\n"  # line 6: missing name
        "D,Delta,lips,abc,,\n"  # line 7
        "E,Echo,lips,1,two,\n"  # line 8
        "F,Fox,lips,1,,colour\n"  # line 9
        "G,Golf,lips,1.005,,\n"  # line 10
    )
    report = await _import(db, "catalog", data)
    assert report.error_lines() == [
        "catalog.csv:3: price -2 is negative",
        "catalog.csv:5: duplicate SKU A (first on line 2)",
        "catalog.csv:6: name is required",
        "catalog.csv:7: price 'abc' is not a number",
        "catalog.csv:8: reorder_point 'two' is not a whole number",
        "catalog.csv:9: attributes part 'colour' is not key=value",
        "catalog.csv:10: price 1.005 has more than two decimals",
    ]
    assert await _count(db, Product) == 0


async def test_a_missing_column_is_reported_once_as_line_one(db: Database) -> None:
    report = await _import(db, "catalog", "sku,name,price\nA,Alpha,1\nB,Beta,2\n")
    assert report.error_lines() == ["catalog.csv:1: missing column category"]


async def test_quoted_newline_keeps_physical_line_numbers(db: Database) -> None:
    data = 'sku,name,category,price\nA,"two\nlines",lips,1\nB,Beta,lips,x\n'
    report = await _import(db, "catalog", data)
    assert report.error_lines() == [
        "catalog.csv:2: name contains control or invisible formatting characters",  # a newline would break chat lists
        "catalog.csv:4: price 'x' is not a number",
    ]


async def test_stock_import_errors_and_dry_run(db: Database) -> None:
    async with db.transaction() as session:
        await add_product(session, "A")
    bad = "sku,warehouse,on_hand\nA,SH,3\nA,,1\nZZ,SH,1\nA,BJ,-1\nA,SH,4\nA,GZ,x\n"
    report = await _import(db, "stock", bad)
    assert report.error_lines() == [
        "stock.csv:3: warehouse is required",
        "stock.csv:4: unknown SKU 'ZZ'",
        "stock.csv:5: on_hand -1 is negative",
        "stock.csv:6: duplicate stock row for A in SH (first on line 2)",
        "stock.csv:7: on_hand 'x' is not a whole number",
    ]
    good = "sku,warehouse,on_hand\nA,SH,3\nA,BJ,4\n"
    dry = await _import(db, "stock", good, dry_run=True)
    assert dry.ok and await _count(db, StockLevel) == 0
    assert (await _import(db, "stock", good)).ok
    async with db.read_session() as session:
        assert await session.scalar(select(Product.on_hand_total)) == 7


async def test_customers_phone_is_normalised_and_bad_ones_refused(db: Database) -> None:
    data = (
        "external_id,name,tier,phone,email,locale\n"
        "C1,Li Wei,vip,+86 138 0013 8000,li@example.com,zh\n"
        "C2,Ann,regular,,,\n"
        "C3,Bob,gold,,,\n"
        "C4,Cy,regular,12,,\n"
        "C5,Di,regular,,not-an-email,\n"
        "C6,Ed,regular,,,fr\n"
    )
    report = await _import(db, "customers", data)
    assert [line.split(":", 2)[1] for line in report.error_lines()] == ["4", "5", "6", "7"]
    assert "tier 'gold' is not one of regular, vip" in report.error_lines()[0]
    report = await _import(db, "customers", "\n".join(data.splitlines()[:3]) + "\n")
    assert report.ok
    async with db.read_session() as session:
        li = await session.scalar(select(Customer).where(Customer.external_id == "C1"))
    assert (li.phone, li.tier, li.locale) == ("+8613800138000", "vip", "zh")


async def test_orders_group_lines_and_check_references(db: Database) -> None:
    async with db.transaction() as session:
        await add_product(session, "A", stock={"SH": 5})
        await add_sold_out(session, "B")
    assert (await _import(db, "customers", "external_id,name,tier\nC1,Li,vip\n")).ok
    bad = (
        "external_id,customer_external_id,sku,qty,status\n"
        "O1,C1,A,1,open\n"
        "O1,C2,B,1,open\n"  # another customer for the same order
        "O2,C9,A,1,open\n"  # unknown customer
        "O3,C1,ZZ,1,open\n"  # unknown SKU
        "O4,C1,A,0,open\n"
        "O5,C1,A,1,shipped\n"
        "O1,C1,A,2,open\n"  # duplicate line
    )
    report = await _import(db, "orders", bad)
    assert [line.split(":", 2)[1] for line in report.error_lines()] == ["3", "4", "5", "6", "7", "8"]
    good = "external_id,customer_external_id,sku,qty,status\nO1,C1,A,1,open\nO1,C1,B,2,backordered\n"
    report = await _import(db, "orders", good)
    assert report.ok and report.created == 1
    assert await _count(db, OrderLine) == 2 and await _count(db, Order) == 1
    async with db.read_session() as session:
        kinds = (await session.scalars(select(StockEvent.kind).where(StockEvent.order_line_id.is_not(None)))).all()
    assert kinds == ["order_short"]  # the backordered line of B, which has no stock


async def test_not_utf8_is_reported(db: Database) -> None:
    report = await import_csv(db, "catalog", "sku,name,category,price\nA,Caf\xe9,x,1\n".encode("latin-1"), label="c.csv")
    assert report.error_lines() == ["c.csv:2: not UTF-8 text"]


async def test_raising_the_reorder_point_past_stock_is_a_crossing(db: Database) -> None:
    async with db.transaction() as session:
        await add_product(session, "A", reorder_point=2, stock={"SH": 4})
    report = await _import(db, "catalog", "sku,name,category,price,reorder_point\nA,Alpha,lips,1,5\n")
    assert report.ok and report.updated == 1
    async with db.read_session() as session:
        kinds = (await session.scalars(select(StockEvent.kind).order_by(StockEvent.id))).all()
    assert kinds[-1] == "low_stock"
