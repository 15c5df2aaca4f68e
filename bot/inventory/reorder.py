"""Reorder prompts for purchasers: opened by a low-stock crossing, acted on by buttons."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import chunked
from bot.delivery.markup import Button, keyboard, pack
from bot.delivery.outbox import STAFF_PRIORITY, Outgoing, enqueue
from bot.events import Reaction, Reactions
from bot.inventory.stock import demand, set_incoming, warehouse_ids
from bot.models import (
    ACTIVE_PROMPT_STATUSES,
    Customer,
    Product,
    PromptStatus,
    ReorderPrompt,
    StockEvent,
    StockEventKind,
    StockLevel,
    WaitlistEntry,
    WaitStatus,
    utcnow,
)
from bot.services import Services
from bot.shop.staff import locale_of, purchasing_recipients

PROMPT_PREFIX = "rp"
LIVE_STATUSES = (*ACTIVE_PROMPT_STATUSES, PromptStatus.ORDERED.value)


@dataclass(frozen=True, slots=True)
class Suggestion:
    qty: int
    available: int
    incoming: int
    safety_stock: int
    sold: int  # over the demand window
    window_days: int
    lead_time_days: int
    lead_demand: int
    waiting: int
    vip_waiting: int
    floor_applied: bool  # nothing sold lately: lift it just above the reorder point


async def suggest(session: AsyncSession, product: Product, services: Services) -> Suggestion:
    days = services.settings.DEMAND_DAYS
    sold = await demand(session, product.id, utcnow() - timedelta(days=days))
    lead_demand = math.ceil(sold * product.lead_time_days / days)
    incoming = int(
        await session.scalar(select(func.coalesce(func.sum(StockLevel.incoming), 0)).where(StockLevel.product_id == product.id))
        or 0
    )
    waiting, vip = await waitlist_counts(session, product.id)
    available = product.available
    qty = product.safety_stock + lead_demand + waiting - max(available, 0) - incoming
    floor = product.reorder_point + 1 - available - incoming
    floor_applied = qty < floor and floor > 0
    return Suggestion(
        qty=max(qty, floor, 0), available=available, incoming=incoming,
        safety_stock=product.safety_stock, sold=sold, window_days=days,
        lead_time_days=product.lead_time_days, lead_demand=lead_demand, waiting=waiting,
        vip_waiting=vip, floor_applied=floor_applied,
    )


async def waitlist_counts(session: AsyncSession, product_id: int) -> tuple[int, int]:
    rows = await session.execute(
        select(Customer.tier, func.count())
        .join(WaitlistEntry, WaitlistEntry.customer_id == Customer.id)
        .where(WaitlistEntry.product_id == product_id, WaitlistEntry.status == WaitStatus.WAITING.value)
        .group_by(Customer.tier)
    )
    counts = dict(rows.all())
    return sum(counts.values()), counts.get("vip", 0)


def prompt_buttons(services: Services, locale: str, prompt: ReorderPrompt) -> dict | None:
    label = services.templates.label
    return keyboard([
        [Button(label(locale, "btn_ordered"), pack(PROMPT_PREFIX, "ordered", prompt.id))],
        [
            Button(label(locale, "btn_snooze"), pack(PROMPT_PREFIX, "snooze", prompt.id)),
            Button(label(locale, "btn_dismiss"), pack(PROMPT_PREFIX, "dismiss", prompt.id)),
        ],
    ])


async def on_low_stock(session: AsyncSession, services: Services, events: Sequence[StockEvent]) -> int:
    """Open a prompt for each product unless one is already live (open, snoozed or ordered)."""
    live = await _with_live_prompt(session, [event.product_id for event in events])
    opened = 0
    for event in events:
        if event.product_id in live:
            continue
        product = await session.get(Product, event.product_id)
        assert product is not None
        suggestion = await suggest(session, product, services)
        prompt = ReorderPrompt(product_id=product.id, cause_event_id=event.id, suggested_qty=suggestion.qty)
        session.add(prompt)
        await session.flush()
        await send_prompt(session, services, prompt, cause=f"open{event.id}", suggestion=suggestion)
        opened += 1
    return opened


async def _with_live_prompt(session: AsyncSession, product_ids: Collection[int]) -> set[int]:
    found: set[int] = set()
    for chunk in chunked(sorted(product_ids)):
        found.update(await session.scalars(
            select(ReorderPrompt.product_id).distinct()
            .where(ReorderPrompt.product_id.in_(chunk), ReorderPrompt.status.in_(LIVE_STATUSES))
        ))
    return found


async def without_live_prompt(session: AsyncSession, product_ids: Collection[int]) -> set[int]:
    return set(product_ids) - await _with_live_prompt(session, product_ids)


async def send_prompt(
    session: AsyncSession, services: Services, prompt: ReorderPrompt, *, cause: str,
    suggestion: Suggestion | None = None,
) -> None:
    product = await session.get(Product, prompt.product_id)
    assert product is not None
    # Worked out once (it reads the ledger and the waitlist), whatever the number of recipients.
    suggestion = suggestion or await suggest(session, product, services)
    rendered: dict[str, str] = {}
    for user_id in await purchasing_recipients(session, services.admins()):
        locale = await locale_of(session, user_id, services.settings.DEFAULT_LOCALE)
        if locale not in rendered:
            rendered[locale] = services.templates.render(
                locale, "reorder_prompt", product=product, s=suggestion, prompt=prompt
            )
        await enqueue(
            session,
            Outgoing(
                dedup_key=f"reorder:{prompt.id}:{cause}:{user_id}",
                chat_id=user_id,
                kind="reorder_prompt",
                text=rendered[locale],
                reply_markup=prompt_buttons(services, locale, prompt),
                priority=STAFF_PRIORITY,
            ),
        )


async def on_recovered(session: AsyncSession, services: Services, events: Sequence[StockEvent]) -> int:
    """Stock is back above the reorder point: live prompts are done."""
    resolved = 0
    for chunk in chunked(sorted({event.product_id for event in events})):
        done = await session.execute(
            update(ReorderPrompt)
            .where(ReorderPrompt.product_id.in_(chunk), ReorderPrompt.status.in_(LIVE_STATUSES))
            .values(status=PromptStatus.RESOLVED.value, updated_at=utcnow())
            .returning(ReorderPrompt.id)
        )
        resolved += len(done.all())
    return resolved


# Purchasing's part of the event pipeline, merged with the others by the composition root.
REORDER_REACTIONS: Reactions = {
    StockEventKind.LOW_STOCK: (Reaction(on_low_stock, concerns=without_live_prompt),),
    StockEventKind.RECOVERED: (Reaction(on_recovered, concerns=_with_live_prompt),),
}


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
    warehouse_id = await _receiving_warehouse(session, prompt.product_id)
    await set_incoming(session, prompt.product_id, warehouse_id, qty, eta)
    return prompt


async def snooze(session: AsyncSession, prompt_id: int, user_id: int, *, hours: int = 24) -> ReorderPrompt:
    prompt = await _live_prompt(session, prompt_id)
    prompt.status, prompt.snoozed_until = PromptStatus.SNOOZED.value, utcnow() + timedelta(hours=hours)
    prompt.acted_by, prompt.updated_at = user_id, utcnow()
    return prompt


async def dismiss(session: AsyncSession, prompt_id: int, user_id: int) -> ReorderPrompt:
    prompt = await _live_prompt(session, prompt_id)
    prompt.status, prompt.acted_by, prompt.updated_at = PromptStatus.DISMISSED.value, user_id, utcnow()
    return prompt


async def wake_snoozed(session: AsyncSession, services: Services, now: datetime | None = None) -> int:
    now = now or utcnow()
    due = list(
        await session.scalars(
            select(ReorderPrompt)
            .where(ReorderPrompt.status == PromptStatus.SNOOZED.value, ReorderPrompt.snoozed_until <= now)
            .with_for_update(skip_locked=True)
        )
    )
    for prompt in due:
        prompt.status, prompt.snoozed_until = PromptStatus.OPEN.value, None
        prompt.wake_count += 1
        await send_prompt(session, services, prompt, cause=f"wake{prompt.wake_count}")
    return len(due)


async def live_prompts(session: AsyncSession, *, include_ordered: bool = True) -> list[ReorderPrompt]:
    statuses = LIVE_STATUSES if include_ordered else ACTIVE_PROMPT_STATUSES
    return list(
        await session.scalars(
            select(ReorderPrompt).where(ReorderPrompt.status.in_(statuses)).order_by(ReorderPrompt.created_at)
        )
    )


async def send_digest(session: AsyncSession, services: Services, day: str) -> int:
    """The morning list of open prompts, once a day per purchaser (keyed by the day)."""
    prompts = await live_prompts(session, include_ordered=False)
    if not prompts:
        return 0
    sent = 0
    for user_id in await purchasing_recipients(session, services.admins()):
        locale = await locale_of(session, user_id, services.settings.DEFAULT_LOCALE)
        text = services.templates.render(locale, "purchaser_digest", prompts=prompts, day=day)
        if await enqueue(session, Outgoing(f"digest:{day}:{user_id}", user_id, "digest", text, priority=STAFF_PRIORITY)):
            sent += 1
    return sent


async def _receiving_warehouse(session: AsyncSession, product_id: int) -> int:
    """Where ordered goods are expected: the warehouse holding most of the product."""
    found = await session.scalar(
        select(StockLevel.warehouse_id)
        .where(StockLevel.product_id == product_id)
        .order_by(StockLevel.on_hand.desc(), StockLevel.id)
        .limit(1)
    )
    if found is not None:
        return found
    return (await warehouse_ids(session, ["MAIN"], create=True))["MAIN"]
