"""Callback data of every button, as aiogram `CallbackData` classes.

Buttons on messages the bot sends on its own are built by services as plain strings with
`bot.delivery.markup.pack`; these classes parse them (same `prefix:field:...` format, checked by
a test). Whatever a button says, handlers check it against the database: callback data comes from
the client and can be forged.
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class PromptAction(CallbackData, prefix="rp"):
    action: str  # ordered | snooze | dismiss
    prompt_id: int


class OrderQty(CallbackData, prefix="rq"):
    prompt_id: int
    qty: int


class OrderEta(CallbackData, prefix="re"):
    prompt_id: int
    days: int


class OfferAction(CallbackData, prefix="of"):
    action: str  # take | wait | cancel
    offer_id: int
    product_id: int = 0


class WaitlistLeave(CallbackData, prefix="wl"):
    entry_id: int


class NotifyPick(CallbackData, prefix="np"):
    product_id: int


class LanguagePick(CallbackData, prefix="lang"):
    locale: str


class PlanAction(CallbackData, prefix="pl"):
    action: str  # t (transfer source -> target) | b (buy for target)
    product_id: int
    source_id: int  # 0 for a purchase
    target_id: int
    qty: int


class PlanDraft(CallbackData, prefix="pd"):
    supplier: str  # `bot.planning.drafts.supplier_key`, not the name: names can exceed 64 bytes


class HeldDecision(CallbackData, prefix="hb"):
    action: str  # send | discard (`bot.recovery.hold.Decision`)
    batch_id: int


class LowRest(CallbackData, prefix="lr"):
    offset: int  # the low-stock digest's list goes on from here
