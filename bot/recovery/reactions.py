"""Recovery's reactions to stock events, run in the event's transaction (see bot/events.py).

- out_of_stock: plan a stockout offer for every affected customer (order lines and waitlist);
- order_short: an open line arrived while the product is out: offer to that line's customer
  (once per stockout: someone already offered for it gets nothing new);
- back_in_stock: open a restock and notify its first wave of the waitlist.
Each is idempotent through unique keys (plan per event, offer per stockout and customer, restock
per event, outbox dedup keys), so handling an event twice does nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from bot.events import Reaction
from bot.models import StockEvent, StockEventKind
from bot.recovery.offers import start_plan
from bot.recovery.restock import on_back_in_stock
from bot.services import Services


async def offer_on_stockout(session: AsyncSession, services: Services, event: StockEvent) -> object:
    return await start_plan(session, services, event)


async def notify_on_restock(session: AsyncSession, services: Services, event: StockEvent) -> object:
    return await on_back_in_stock(session, services, event)


RECOVERY_REACTIONS: dict[StockEventKind, Sequence[Reaction]] = {
    StockEventKind.OUT_OF_STOCK: (offer_on_stockout,),
    StockEventKind.ORDER_SHORT: (offer_on_stockout,),
    StockEventKind.BACK_IN_STOCK: (notify_on_restock,),
}
