"""Reorder prompts for purchasers: opened by a low-stock crossing (or the sweep after an import),
sent with their suggestion and buttons, woken after a snooze, and listed in the morning digest.
What the buttons do is bot/planning/prompt_actions.py."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import chunked
from bot.delivery.markup import Button, keyboard, pack
from bot.delivery.outbox import STAFF_PRIORITY, Outgoing, enqueue
from bot.delivery.templates import Templates
from bot.events import Reaction, Reactions
from bot.inventory.stock import event_row
from bot.models import (
    ACTIVE_PROMPT_STATUSES,
    BOOKKEEPING_LANE,
    Product,
    PromptStatus,
    ReorderPrompt,
    StockEvent,
    StockEventKind,
    utcnow,
)
from bot.planning.suggested_order import Suggestion, suggest
from bot.planning.suggestions import Line
from bot.settings import Settings
from bot.shop.staff import locale_of, purchasing_recipients

PROMPT_PREFIX = "rp"
DIGEST_PREFIX = "lr"  # the low-stock digest's "the rest" button: lr:<offset>
DIGEST_OVER = 20  # more new prompts than this at once reach a purchaser as one digest
DIGEST_TOP = 10  # the most urgent, listed in the digest
PROMPTS_PER_STATEMENT = 1000
PLAN_PREFIX = "pl"
LIVE_STATUSES = (*ACTIVE_PROMPT_STATUSES, PromptStatus.ORDERED.value)


def prompt_buttons(
    templates: Templates, locale: str, prompt: ReorderPrompt, suggestion: Suggestion | None = None
) -> dict | None:
    label = templates.label
    moving = suggestion.transfer if suggestion else None
    return keyboard([
        [Button(label(locale, "btn_transfer", qty=moving.qty, source=moving.from_warehouse, target=moving.warehouse),
                transfer_data(moving))] if moving else [],
        [Button(label(locale, "btn_ordered"), pack(PROMPT_PREFIX, "ordered", prompt.id))],
        [
            Button(label(locale, "btn_snooze"), pack(PROMPT_PREFIX, "snooze", prompt.id)),
            Button(label(locale, "btn_dismiss"), pack(PROMPT_PREFIX, "dismiss", prompt.id)),
        ],
    ])


def transfer_data(line: Line) -> str:
    """The callback of a transfer button (prompt or /plan): checked again when pressed."""
    return pack(PLAN_PREFIX, "t", line.product_id, line.from_warehouse_id, line.warehouse_id, line.qty)


async def on_low_stock(
    session: AsyncSession, settings: Settings, templates: Templates, events: Sequence[StockEvent]
) -> int:
    """Open a prompt for each product unless one is already live (open, snoozed or ordered)."""
    live = await _with_live_prompt(session, [event.product_id for event in events])
    causes: dict[int, int] = {}  # product -> the event that opens its prompt
    for event in events:
        if event.product_id not in live:
            causes.setdefault(event.product_id, event.id)
    return await open_prompts(session, settings, templates, causes)


async def open_prompts(
    session: AsyncSession, settings: Settings, templates: Templates, causes: Mapping[int, int]
) -> int:
    """Open a prompt per product (`causes`: product -> cause event). More than DIGEST_OVER at
    once reach each purchaser as one digest (how many, the most urgent, a button for the rest)
    instead of a message each; their suggestions are worked out when a purchaser opens one."""
    if len(causes) > DIGEST_OVER:
        lowest = await _open_for_digest(session, causes)
        await send_low_digest(session, settings, templates, len(causes), cause=lowest)
        return len(causes)
    for product_id, event_id in causes.items():
        product = await session.get(Product, product_id)
        assert product is not None
        suggestion = await suggest(session, product, settings)
        prompt = ReorderPrompt(product_id=product.id, cause_event_id=event_id, suggested_qty=suggestion.qty)
        session.add(prompt)
        await session.flush()
        await send_prompt(session, settings, templates, prompt, cause=f"open{event_id}", suggestion=suggestion)
    return len(causes)


async def _open_for_digest(session: AsyncSession, causes: Mapping[int, int]) -> int:
    """A digest's prompts, as rows, not ORM objects: the sweep after a first import opens tens of
    thousands (a third of a 100k catalog arrives at zero), and an object each would cost ~4 KB
    and the flush. Their suggestions wait until a purchaser opens one. Returns the lowest id."""
    now = utcnow()
    lowest_ids = []
    for chunk in chunked(sorted(causes.items()), PROMPTS_PER_STATEMENT):
        ids = await session.scalars(insert(ReorderPrompt).returning(ReorderPrompt.id), [
            {"product_id": product_id, "cause_event_id": event_id, "suggested_qty": 0,
             "status": PromptStatus.OPEN.value, "created_at": now, "updated_at": now}
            for product_id, event_id in chunk
        ])
        lowest_ids.append(min(ids))
    return min(lowest_ids)


async def most_urgent(session: AsyncSession, *, offset: int = 0, limit: int = DIGEST_TOP) -> tuple[int, list[Product]]:
    """Open prompts' products, furthest below their reorder point first, and how many there are."""
    base = (
        select(Product)
        .join(ReorderPrompt, ReorderPrompt.product_id == Product.id)
        .where(ReorderPrompt.status == PromptStatus.OPEN.value)
    )
    total = int(await session.scalar(select(func.count()).select_from(base.subquery())) or 0)
    products = list(await session.scalars(
        base.order_by((Product.on_hand_total - Product.reserved_total - Product.reorder_point), Product.id)
        .offset(offset).limit(limit)
    ))
    return total, products


def rest_button(templates: Templates, locale: str, offset: int, remaining: int) -> dict | None:  # type: ignore[type-arg]
    if remaining <= 0:
        return None
    return keyboard([[Button(templates.plain(locale, "btn_low_rest", count=remaining), pack(DIGEST_PREFIX, offset))]])


async def send_low_digest(
    session: AsyncSession, settings: Settings, templates: Templates, opened: int, *, cause: int
) -> None:
    total, top = await most_urgent(session)
    for user_id in await purchasing_recipients(session, settings.ADMIN_IDS):
        locale = await locale_of(session, user_id, settings.DEFAULT_LOCALE)
        await enqueue(session, Outgoing(
            dedup_key=f"lowdigest:{cause}:{user_id}", chat_id=user_id, kind="low_digest",
            text=templates.render(locale, "low_digest", opened=opened, total=total, products=top),
            reply_markup=rest_button(templates, locale, len(top), total - len(top)), priority=STAFF_PRIORITY,
        ))


async def sweep_low_stock(session: AsyncSession, settings: Settings, templates: Templates) -> int:
    """After every import and at start: each product at or below its reorder point with no live
    prompt is prompted, not only those that fall (a first level is a state and makes no
    crossing). Its prompt's cause is a low-stock event written here, already handled."""
    due = (
        select(Product.id, Product.available, Product.reorder_point)
        .where(Product.stock_seen.is_(True), Product.available <= Product.reorder_point,
               ~exists().where(ReorderPrompt.product_id == Product.id, ReorderPrompt.status.in_(LIVE_STATUSES)))
    )
    count = int(await session.scalar(select(func.count()).select_from(due.subquery())) or 0)
    if count == 0:
        return 0
    if count <= DIGEST_OVER:
        return await open_prompts(session, settings, templates,
                                  await _low_events(session, list(await session.execute(due.order_by(Product.id)))))
    # One digest for all of them, written a chunk of products at a time (by id), so that a messy
    # first import's 30,000 never sit in memory at once as rows, events and prompts.
    opened, lowest, after = 0, None, 0
    while chunk := list(await session.execute(
            due.where(Product.id > after).order_by(Product.id).limit(PROMPTS_PER_STATEMENT))):
        causes = await _low_events(session, chunk)
        first = await _open_for_digest(session, causes)
        opened, lowest, after = opened + len(causes), min(first, lowest or first), chunk[-1][0]
    assert lowest is not None
    await send_low_digest(session, settings, templates, opened, cause=lowest)
    return opened


async def _low_events(session: AsyncSession, due: Sequence[Any]) -> dict[int, int]:
    """A low-stock event per (product, available, reorder point), written already handled: the
    causes of the sweep's prompts. Returns product -> event."""
    now = utcnow()
    rows = [{**event_row(product_id, StockEventKind.LOW_STOCK, available, available, point),
             "processed_at": now, "lane": BOOKKEEPING_LANE, "batch_id": None}
            for product_id, available, point in due]
    causes: dict[int, int] = {}
    for chunk in chunked(rows, PROMPTS_PER_STATEMENT):
        written = await session.execute(
            insert(StockEvent).returning(StockEvent.id, StockEvent.product_id, sort_by_parameter_order=True), chunk
        )
        causes.update({product_id: event_id for event_id, product_id in written})
    return causes


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
    session: AsyncSession, settings: Settings, templates: Templates, prompt: ReorderPrompt, *, cause: str,
    suggestion: Suggestion | None = None,
) -> None:
    product = await session.get(Product, prompt.product_id)
    assert product is not None
    # Worked out once (it reads the ledger and the waitlist), whatever the number of recipients.
    suggestion = suggestion or await suggest(session, product, settings)
    rendered: dict[str, str] = {}
    for user_id in await purchasing_recipients(session, settings.ADMIN_IDS):
        locale = await locale_of(session, user_id, settings.DEFAULT_LOCALE)
        if locale not in rendered:
            rendered[locale] = templates.render(
                locale, "reorder_prompt", product=product, s=suggestion, prompt=prompt
            )
        await enqueue(
            session,
            Outgoing(
                dedup_key=f"reorder:{prompt.id}:{cause}:{user_id}",
                chat_id=user_id,
                kind="reorder_prompt",
                text=rendered[locale],
                reply_markup=prompt_buttons(templates, locale, prompt, suggestion),
                priority=STAFF_PRIORITY,
            ),
        )


async def on_recovered(session: AsyncSession, events: Sequence[StockEvent]) -> int:
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


def reorder_reactions(settings: Settings, templates: Templates) -> Reactions:
    """Purchasing's part of the event pipeline, merged with the others by the composition root."""

    async def prompt_on_low_stock(session: AsyncSession, events: Sequence[StockEvent]) -> int:
        return await on_low_stock(session, settings, templates, events)

    return {
        StockEventKind.LOW_STOCK: (Reaction(prompt_on_low_stock, concerns=without_live_prompt),),
        StockEventKind.RECOVERED: (Reaction(on_recovered, concerns=_with_live_prompt),),
    }


async def wake_snoozed(
    session: AsyncSession, settings: Settings, templates: Templates, now: datetime | None = None
) -> int:
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
        await send_prompt(session, settings, templates, prompt, cause=f"wake{prompt.wake_count}")
    return len(due)


async def live_prompts(session: AsyncSession, *, include_ordered: bool = True) -> list[ReorderPrompt]:
    statuses = LIVE_STATUSES if include_ordered else ACTIVE_PROMPT_STATUSES
    return list(
        await session.scalars(
            select(ReorderPrompt).where(ReorderPrompt.status.in_(statuses)).order_by(ReorderPrompt.created_at)
        )
    )


async def send_digest(session: AsyncSession, settings: Settings, templates: Templates, day: str) -> int:
    """The morning list of open prompts, once a day per purchaser (keyed by the day)."""
    prompts = await live_prompts(session, include_ordered=False)
    if not prompts:
        return 0
    sent = 0
    for user_id in await purchasing_recipients(session, settings.ADMIN_IDS):
        locale = await locale_of(session, user_id, settings.DEFAULT_LOCALE)
        text = templates.render(locale, "purchaser_digest", prompts=prompts, day=day)
        if await enqueue(session, Outgoing(f"digest:{day}:{user_id}", user_id, "digest", text, priority=STAFF_PRIORITY)):
            sent += 1
    return sent
