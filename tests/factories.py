"""Small builders for test data, written through the same services the product uses."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.inventory.stock import StockChange, apply_change, apply_changes
from bot.models import Customer, Order, OrderLine, Product


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


async def add_customer(session, external_id: str, user: int | None = None, *, tier: str = "regular",
                       locale: str | None = None, name: str | None = None) -> Customer:
    customer = Customer(external_id=external_id, name=name or f"Cust {external_id}", tier=tier, locale=locale,
                        telegram_user_id=user, chat_id=user)
    session.add(customer)
    await session.flush()
    return customer


async def add_order(session, customer: Customer, product: Product, qty: int, *, status: str = "open",
                    external_id: str | None = None) -> OrderLine:
    order = Order(external_id=external_id or f"O-{customer.external_id}-{product.sku}", customer_id=customer.id,
                  lines=[OrderLine(product_id=product.id, qty=qty, status=status)])
    session.add(order)
    await session.flush()
    return order.lines[0]


async def change_stock(h, sku: str, delta: int) -> None:  # type: ignore[no-untyped-def]
    async with h.db.transaction() as session:
        await apply_change(session, StockChange(sku, "SH", delta=delta, actor="test"))


async def available(h, sku: str) -> int:  # type: ignore[no-untyped-def]
    async with h.db.read_session() as session:
        product = await session.scalar(select(Product).where(Product.sku == sku))
        return product.on_hand_total - product.reserved_total
