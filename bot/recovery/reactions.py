"""Recovery's reactions to stock events (see bot/events.py for how they are called).

- out_of_stock: plan a stockout offer for every affected customer (order lines and waitlist);
- order_short: an open line arrived while the product is out: offer to that line's customer
  (once per stockout: someone already offered for it gets nothing new);
- back_in_stock: open a restock and notify its first wave of the waitlist.
Each says which products it concerns, so a batch of events for products nobody ordered or waits
for costs one query. Each is idempotent through unique keys (plan per event, offer per stockout and
customer, restock per event, outbox dedup keys), so handling an event twice does nothing twice.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import chunked
from bot.events import Reaction, Reactions
from bot.models import Customer, Product, StockEvent, StockEventKind, WaitlistEntry, WaitStatus
from bot.recovery.context import RecoveryContext
from bot.recovery.offers import start_plan, with_audience
from bot.recovery.offers.message import SubView
from bot.recovery.restock import on_back_in_stock


async def waited_for(session: AsyncSession, product_ids: Collection[int]) -> set[int]:
    """Of `product_ids`, those with someone the bot can message on the waitlist: only they get a
    restock."""
    found: set[int] = set()
    for chunk in chunked(sorted(product_ids)):
        found.update(await session.scalars(
            select(WaitlistEntry.product_id).distinct()
            .join(Customer, Customer.id == WaitlistEntry.customer_id)
            .where(WaitlistEntry.product_id.in_(chunk), WaitlistEntry.status == WaitStatus.WAITING.value,
                   Customer.contactable)
        ))
    return found


def recovery_reactions(recovery: RecoveryContext) -> Reactions:
    """Recovery's part of the event pipeline, merged with the others by the composition root."""

    async def offer_on_stockout(session: AsyncSession, events: Sequence[StockEvent]) -> None:
        substitutes: dict[int, list[SubView]] = {}  # worked out once per product, not per line
        for event in events:
            product = await session.get(Product, event.product_id)
            if product is not None and product.available > 0:
                continue  # back in stock since (a later event of another lane got here first)
            await start_plan(session, recovery, event, substitutes)

    async def notify_on_restock(session: AsyncSession, events: Sequence[StockEvent]) -> None:
        for event in events:
            await on_back_in_stock(session, recovery, event)

    return {
        StockEventKind.OUT_OF_STOCK: (Reaction(offer_on_stockout, concerns=with_audience),),
        StockEventKind.ORDER_SHORT: (Reaction(offer_on_stockout, concerns=with_audience),),
        StockEventKind.BACK_IN_STOCK: (Reaction(notify_on_restock, concerns=waited_for),),
    }
