"""Linked customers: /notify, /waitlist (with a leave button per entry), /stop."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handlers import keyboards
from bot.handlers.callbacks import NotifyPick, WaitlistLeave
from bot.handlers.filters import IsCustomer
from bot.handlers.middlewares import Texts
from bot.models import Customer, Product
from bot.recovery.waitlist import customer_waitlist, join_waitlist, leave_waitlist
from bot.services import Services
from bot.shop.staff import Actor

MAX_QUERY = 200
CLEAR_LEAD = 10.0  # score points by which the best hit must lead to be taken without asking


def create_router() -> Router:
    router = Router(name="customer")
    router.message.filter(IsCustomer())
    router.callback_query.filter(IsCustomer())
    router.message.register(notify, Command("notify"))
    router.message.register(show_waitlist, Command("waitlist"))
    router.message.register(stop, Command("stop"))
    router.callback_query.register(notify_picked, NotifyPick.filter())
    router.callback_query.register(leave_pressed, WaitlistLeave.filter())
    return router


async def notify(message: Message, command: CommandObject, session: AsyncSession, actor: Actor,
                 texts: Texts, services: Services) -> None:
    query = (command.args or "").strip()
    if not query:
        await message.answer(texts("usage_notify"))
        return
    hits = await services.catalog.search.search_async(query[:MAX_QUERY], 5)
    if not hits:
        await message.answer(texts("notify_nothing", query=query[:60]))
        return
    if len(hits) == 1 or hits[0].score - hits[1].score >= CLEAR_LEAD:
        product = await session.get(Product, hits[0].product_id)
        if product is not None:
            await _join(message, session, actor, texts, services, product)
            return
    products = {p.id: p for p in await session.scalars(select(Product).where(Product.id.in_([h.product_id for h in hits])))}
    choices = [products[h.product_id] for h in hits if h.product_id in products]
    await message.answer(texts("notify_which"), reply_markup=keyboards.pick_product(choices))


async def _join(target: Message, session: AsyncSession, actor: Actor, texts: Texts, services: Services,
                product: Product) -> None:
    assert actor.customer is not None
    _, fresh = await join_waitlist(session, actor.customer.id, product.id, days=services.settings.WAITLIST_DAYS)
    key = "notify_joined" if fresh else "notify_already"
    text = texts(key, name=product.name, days=services.settings.WAITLIST_DAYS)
    if product.available > 0:
        text += "\n" + texts("notify_in_stock_now")
    await target.answer(text)


async def notify_picked(query: CallbackQuery, callback_data: NotifyPick, session: AsyncSession, actor: Actor,
                        texts: Texts, services: Services) -> None:
    product = await session.get(Product, callback_data.product_id)
    if product is None or not isinstance(query.message, Message):
        await query.answer(texts.plain("button_refused"), show_alert=True)
        return
    await query.answer()
    await query.message.edit_reply_markup(reply_markup=None)
    await _join(query.message, session, actor, texts, services, product)


async def show_waitlist(message: Message, session: AsyncSession, actor: Actor, texts: Texts) -> None:
    assert actor.customer is not None
    entries = await customer_waitlist(session, actor.customer.id)
    await message.answer(texts.render("waitlist", entries=entries), reply_markup=keyboards.waitlist(texts, entries))


async def leave_pressed(query: CallbackQuery, callback_data: WaitlistLeave, session: AsyncSession, actor: Actor,
                        texts: Texts) -> None:
    assert actor.customer is not None
    left = await leave_waitlist(session, actor.customer.id, callback_data.entry_id)
    if left is None:
        await query.answer(texts.plain("button_refused"), show_alert=True)
        return
    product = await session.get(Product, left.product_id)
    await query.answer(keyboards.answer_text(texts.plain("waitlist_left", name=product.name if product else "")))
    entries = await customer_waitlist(session, actor.customer.id)
    if isinstance(query.message, Message):
        await query.message.edit_text(texts.render("waitlist", entries=entries),
                                      reply_markup=keyboards.waitlist(texts, entries))


async def stop(message: Message, session: AsyncSession, actor: Actor, texts: Texts) -> None:
    assert actor.customer is not None
    customer = await session.get(Customer, actor.customer.id)
    assert customer is not None
    customer.opted_out = True
    await message.answer(texts("opted_out"))
