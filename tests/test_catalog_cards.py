"""The cards the search and substitute indexes keep, read from the database."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from bot.db import Database
from bot.inventory.catalog import CARD_COLUMNS, card_of
from bot.ingest.importer import import_csv
from bot.models import Product


async def test_a_card_read_from_its_columns_is_the_card_of_the_product(db: Database) -> None:
    data = ("sku,name,category,price,brand,safety_stock,attributes\n"
            "LIP-1,唇釉 豆沙色,lips,89.90,Rosa,2,colour=rose;unit=ml\n"
            "LIP-2,Velvet Red,lips,12,,0,\n")
    assert (await import_csv(db, "catalog", data.encode(), label="catalog.csv")).ok
    async with db.read_session() as session:
        products = list(await session.scalars(select(Product).order_by(Product.sku)))
        rows = list(await session.execute(select(*CARD_COLUMNS).order_by(Product.sku)))
    assert [card_of(row) for row in rows] == [card_of(product) for product in products]
    glaze, velvet = (card_of(row) for row in rows)
    assert (glaze.price, glaze.brand, dict(glaze.attributes), glaze.safety_stock) == (
        Decimal("89.90"), "Rosa", {"colour": "rose", "unit": "ml"}, 2)
    assert (velvet.brand, dict(velvet.attributes)) == (None, {})
