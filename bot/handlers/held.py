"""Admins: Send or Discard a batch of customer messages held by MASS_CONTACT_LIMIT.

Only admins get here (others fall through to the refusal); the first press of any admin decides
and every later press is answered with what was decided, changing nothing.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handlers.callbacks import HeldDecision
from bot.handlers.filters import HasRole
from bot.handlers.keyboards import answer_text
from bot.handlers.middlewares import Texts
from bot.models import BatchStatus, Role
from bot.recovery import hold
from bot.shop.staff import Actor


def create_router() -> Router:
    router = Router(name="held")
    router.callback_query.filter(HasRole(Role.ADMIN))
    router.callback_query.register(held_pressed, HeldDecision.filter())
    return router


async def held_pressed(query: CallbackQuery, callback_data: HeldDecision, session: AsyncSession, actor: Actor,
                       texts: Texts) -> None:
    try:
        decision = hold.Decision(callback_data.action)
    except ValueError:
        await query.answer(texts.plain("button_refused"), show_alert=True)
        return
    decided = await hold.decide(session, callback_data.batch_id, decision, actor.user_id)
    batch = decided.batch
    if batch is None or batch.status not in (BatchStatus.SENT.value, BatchStatus.DISCARDED.value):
        await query.answer(texts.plain("held_unknown"), show_alert=True)
        return
    sent = batch.status == BatchStatus.SENT.value
    if not decided.now:
        key = "held_already_sent" if sent else "held_already_discarded"
        await query.answer(answer_text(texts.plain(key, batch_id=batch.id)), show_alert=True)
        return
    done = texts("held_sent" if sent else "held_discarded", batch_id=batch.id, customers=batch.customers)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)
        await query.message.answer(done)
