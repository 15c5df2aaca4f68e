"""Buttons on stockout offers: take a substitute, wait for the restock, cancel the order line.

Callback data comes from the client and can be forged, so every press is checked against the
customer's own, still unanswered offer (and a substitute against the ones it offers); anything
else is refused with nothing changed. An answered offer's message is edited: the outcome replaces
the buttons, so it cannot be pressed twice.
"""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.delivery.templates import money
from bot.handlers.callbacks import OfferAction
from bot.handlers.keyboards import answer_text
from bot.handlers.filters import IsCustomer
from bot.handlers.middlewares import Texts
from bot.recovery import offers
from bot.services import Services
from bot.shop.staff import Actor

log = logging.getLogger(__name__)


def create_router() -> Router:
    router = Router(name="offers")
    router.callback_query.filter(IsCustomer())
    router.callback_query.register(offer_pressed, OfferAction.filter())
    # Anything else (garbage that does not parse) falls through to the fallback's refusal.
    return router


async def offer_pressed(query: CallbackQuery, callback_data: OfferAction, session: AsyncSession, actor: Actor,
                        texts: Texts, services: Services) -> None:
    assert actor.customer is not None
    message = query.message if isinstance(query.message, Message) else None
    try:
        offer = await offers.own_open_offer(session, callback_data.offer_id, actor.customer.id,
                                            chat_id=message.chat.id if message else None,
                                            message_id=message.message_id if message else None)
        if callback_data.action == "take":
            result = await offers.take_substitute(session, services.recovery, offer, callback_data.product_id)
            if isinstance(result, offers.SoldOut):
                await session.flush()
                key = "recovery_sold_out_next" if result.next else "recovery_sold_out_none"
                await query.answer(answer_text(texts.plain(key, name=result.substitute.name)), show_alert=True)
                text, markup = await offers.render_offer(session, services.templates, offer, texts.locale)
                await _edit(message, text, markup)
                return
            done = texts("recovery_taken", qty=result.qty, name=result.substitute.name,
                         total=money(result.qty * result.substitute.price_cents),
                         until=result.reservation.expires_at)
            toast = texts.plain("recovery_taken_short", name=result.substitute.name)
        elif callback_data.action == "wait":
            days = services.settings.WAITLIST_DAYS
            await offers.wait_for_restock(session, offer, waitlist_days=days)
            done = texts("recovery_waiting", days=days)
            toast = texts.plain("recovery_waiting_short")
        elif callback_data.action == "cancel":
            await offers.cancel_line(session, offer)
            done = texts("recovery_cancel_requested")
            toast = texts.plain("recovery_cancel_short")
        else:
            raise offers.Refused("button_refused")
    except offers.Refused as refused:
        await query.answer(texts.plain(refused.key), show_alert=True)
        return
    await session.flush()
    text, _ = await offers.render_offer(session, services.templates, offer, texts.locale, done=done)
    await query.answer(answer_text(toast))
    await _edit(message, text, None)


async def _edit(message: Message | None, text: str, markup: dict | None) -> None:  # type: ignore[type-arg]
    if message is None:
        return
    try:
        await message.edit_text(text, reply_markup=InlineKeyboardMarkup.model_validate(markup) if markup else None)
    except TelegramBadRequest:  # unchanged, or too old to edit: the answer already told them
        log.debug("could not edit offer message", exc_info=True)
