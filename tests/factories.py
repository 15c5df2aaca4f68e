"""Small builders for test data, written through the same services the product uses."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from bot.inventory.stock import StockChange, apply_changes
from bot.models import Product


async def add_product(
    session: AsyncSession,
    sku: str,
    *,
    name: str | None = None,
    category: str = "lips",
    price: str = "10.00",
    reorder_point: int = 5,
    stock: dict[str, int] | None = None,
    **fields: object,
) -> Product:
    product = Product(
        sku=sku,
        name=name or f"Product {sku}",
        category=category,
        price_cents=int(Decimal(price) * 100),
        reorder_point=reorder_point,
        attributes=fields.pop("attributes", {}),
        **fields,
    )
    session.add(product)
    await session.flush()
    if stock:
        await apply_changes(
            session,
            [StockChange(sku, warehouse, on_hand=qty, actor="test") for warehouse, qty in stock.items()],
        )
    return product
