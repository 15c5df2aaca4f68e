"""What a purchaser's answer to a reorder prompt does: ordered (also from /plan), snoozed, dismissed."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.inventory.stock import warehouse_ids
from bot.models import (
    ACTIVE_PROMPT_STATUSES,
    Product,
    PromptStatus,
    ReorderPrompt,
    StockLevel,
    utcnow,
)
from bot.planning.purchasing import place_order
from bot.planning.suggestions import Action, suggestions


class PromptGone(LookupError):
    """The prompt was acted on already (by this or another purchaser), or is resolved."""


async def _live_prompt(session: AsyncSession, prompt_id: int, statuses: tuple[str, ...] = ACTIVE_PROMPT_STATUSES) -> ReorderPrompt:
    prompt = await session.get(ReorderPrompt, prompt_id, with_for_update=True)
    if prompt is None or prompt.status not in statuses:
        raise PromptGone(prompt_id)
    return prompt


async def mark_ordered(
    session: AsyncSession, prompt_id: int, qty: int, eta: datetime, user_id: int
) -> ReorderPrompt:
    prompt = await _live_prompt(session, prompt_id)
    prompt.status, prompt.ordered_qty, prompt.ordered_eta = PromptStatus.ORDERED.value, qty, eta
    prompt.acted_by, prompt.updated_at = user_id, utcnow()
    product = await session.get(Product, prompt.product_id)
    assert product is not None
    await place_order(session, product, await _receiving_warehouse(session, product.id), qty, eta, user_id,
                      prompt_id=prompt.id)
    return prompt


async def order_from_plan(
    session: AsyncSession, product_id: int, warehouse_id: int, qty: int, eta: datetime, user_id: int
) -> Product:
    """An order placed from /plan: recorded like one from a prompt, and the product's open
    prompt (if any) is marked ordered so nobody orders it twice."""
    product = await session.get(Product, product_id)
    if product is None:
        raise PromptGone(product_id)
    live = await session.scalars(
        select(ReorderPrompt).where(ReorderPrompt.product_id == product_id,
                                    ReorderPrompt.status.in_(ACTIVE_PROMPT_STATUSES)).with_for_update()
    )
    prompt_id = None
    for prompt in live:
        prompt.status, prompt.ordered_qty, prompt.ordered_eta = PromptStatus.ORDERED.value, qty, eta
        prompt.acted_by, prompt.updated_at, prompt_id = user_id, utcnow(), prompt.id
    await place_order(session, product, warehouse_id, qty, eta, user_id, prompt_id=prompt_id)
    return product


async def snooze(session: AsyncSession, prompt_id: int, user_id: int, *, hours: int = 24) -> ReorderPrompt:
    prompt = await _live_prompt(session, prompt_id)
    prompt.status, prompt.snoozed_until = PromptStatus.SNOOZED.value, utcnow() + timedelta(hours=hours)
    prompt.acted_by, prompt.updated_at = user_id, utcnow()
    return prompt


async def dismiss(session: AsyncSession, prompt_id: int, user_id: int) -> ReorderPrompt:
    prompt = await _live_prompt(session, prompt_id)
    prompt.status, prompt.acted_by, prompt.updated_at = PromptStatus.DISMISSED.value, user_id, utcnow()
    return prompt


async def _receiving_warehouse(session: AsyncSession, product_id: int) -> int:
    """Where ordered goods are expected: where the plan buys, else the warehouse holding most."""
    buying = [line for line in await suggestions(session, [product_id]) if line.action is Action.BUY]
    if buying:
        return max(buying, key=lambda line: line.qty).warehouse_id
    found = await session.scalar(
        select(StockLevel.warehouse_id)
        .where(StockLevel.product_id == product_id)
        .order_by(StockLevel.on_hand.desc(), StockLevel.id)
        .limit(1)
    )
    if found is not None:
        return found
    return (await warehouse_ids(session, ["MAIN"], create=True))["MAIN"]
