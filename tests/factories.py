"""Test data: small builders written through the same services the product uses, a stockout to
recover from, the people chat tests talk as, and `every_row` to show that something wrote nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database
from bot.inventory.stock import StockChange, apply_change, apply_changes
from bot.models import Base, Customer, Order, OrderLine, Product, StockoutOffer, TelegramUser
from bot.recovery.waitlist import join_waitlist
from bot.sandbox import SentMessage

if TYPE_CHECKING:  # the harness starts the whole bot; builders only need its type
    from tests.harness import Harness

# The admin of the `settings` fixture (its ADMIN_IDS): an admin by configuration, not by /grant.
ADMIN = 1
# Staff that a test makes so with /grant.
PURCHASER, REP = 200, 300
# Customers of the recovery shelf (`customers`), by their Telegram user (= chat) id.
VIP, REG, WAITER, ZH = 101, 102, 103, 104


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


async def add_sold_out(session: AsyncSession, sku: str, **fields: object) -> Product:
    """A product that had stock and ran out (its first level is a state, so it starts at one)."""
    product = await add_product(session, sku, stock={"SH": 1}, **fields)
    await apply_change(session, StockChange(sku, "SH", on_hand=0, actor="test"))
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


async def change_stock(h: Harness, sku: str, delta: int) -> None:
    async with h.db.transaction() as session:
        await apply_change(session, StockChange(sku, "SH", delta=delta, actor="test"))


async def available(h: Harness, sku: str) -> int:
    async with h.db.read_session() as session:
        product = await session.scalar(select(Product).where(Product.sku == sku))
        return product.on_hand_total - product.reserved_total


# Every update stamps its sender's `last_seen_at` (the unit of work's own bookkeeping, not a
# handler's doing), so `every_row` leaves it out.
_STAMPED_ON_EVERY_UPDATE = {TelegramUser.__table__.c.last_seen_at}


async def every_row(db: Database) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows, in a stable order: the same before and after means nothing was written.

    Let the users of the comparison write to the bot once before the first call: a first update
    records its sender."""
    async with db.read_session() as session:
        return {
            table.name: sorted(
                (tuple(row) for row in await session.execute(
                    select(*(c for c in table.columns if c not in _STAMPED_ON_EVERY_UPDATE)))),
                key=repr,
            )
            for table in Base.metadata.sorted_tables
        }


# --- a stockout to recover from ----------------------------------------------------------------


async def catalog(h: Harness) -> dict[str, Product]:
    """The lipstick shelf: LIP-1 runs out; LIP-2..5 are candidates, LIP-6 is out of the band."""
    async with h.db.transaction() as session:
        products = {
            "LIP-1": await add_product(session, "LIP-1", name="Velvet Lipstick Red", price="10.00", stock={"SH": 3},
                                       reorder_point=0),
            "LIP-2": await add_product(session, "LIP-2", name="Velvet Lipstick Rose", price="11.50", stock={"SH": 5},
                                       reorder_point=0),
            "LIP-3": await add_product(session, "LIP-3", name="Velvet Lipstick Coral", price="9.00", stock={"SH": 5},
                                       reorder_point=0),
            "LIP-4": await add_product(session, "LIP-4", name="Matte Lipstick Red", price="10.00", stock={"SH": 5},
                                       reorder_point=0),
            "LIP-5": await add_product(session, "LIP-5", name="Shine Balm", price="10.00", stock={"SH": 5},
                                       reorder_point=0),
            "LIP-6": await add_product(session, "LIP-6", name="Velvet Lipstick Red Deluxe", price="30.00",
                                       stock={"SH": 5}, reorder_point=0),
        }
    await h.services.catalog.refresh(h.db)
    return products


async def customers(h: Harness, products: dict[str, Product], *, zh: bool = False) -> dict[str, Customer]:
    """Who LIP-1's stockout reaches: a regular and a VIP with orders, a waiter, a VIP with no chat."""
    lip = products["LIP-1"]
    async with h.db.transaction() as session:
        found = {
            "reg": await add_customer(session, "C-REG", REG),
            "vip": await add_customer(session, "C-VIP", VIP, tier="vip", name="Vera <VIP>"),
            "waiter": await add_customer(session, "C-WAIT", WAITER),
            "offline": await add_customer(session, "C-OFF", None, tier="vip"),
        }
        # The regular ordered first: VIPs still go first.
        await add_order(session, found["reg"], lip, 1)
        await add_order(session, found["vip"], lip, 2, status="backordered")
        await add_order(session, found["offline"], lip, 1)
        await join_waitlist(session, found["waiter"].id, lip.id, days=90)
        if zh:
            found["zh"] = await add_customer(session, "C-ZH", ZH, locale="zh", name="王芳")
            await add_order(session, found["zh"], lip, 1)
    return found


async def stockout(h: Harness) -> tuple[dict[str, Product], dict[str, Customer]]:
    """The shelf and its customers, after LIP-1 ran out and the bot made its offers."""
    products = await catalog(h)
    people = await customers(h, products)
    await change_stock(h, "LIP-1", -3)
    await h.settle()
    return products, people


async def offers_of(h: Harness) -> dict[int, StockoutOffer]:
    """Every stockout offer, by customer id."""
    async with h.db.read_session() as session:
        return {o.customer_id: o for o in await session.scalars(select(StockoutOffer))}


def offer_message(h: Harness, chat: int) -> SentMessage:
    """The latest stockout offer in `chat`."""
    found = [m for m in h.sandbox.messages(chat)
             if m.buttons() or "out of stock" in (m.text or "") or "缺货" in (m.text or "")]
    assert found, f"no offer in chat {chat}"
    return found[-1]
