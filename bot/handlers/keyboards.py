"""Keyboards built from callback data classes and the user's language."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)

from bot.handlers.callbacks import LanguagePick, NotifyPick, OrderEta, OrderQty, WaitlistLeave
from bot.handlers.middlewares import Texts
from bot.models import Product, WaitlistEntry

ANSWER_LIMIT = 200  # characters Telegram takes in a callback answer (toast or alert)


def answer_text(text: str) -> str:
    """A plain text cut to what a callback answer may hold (a long product name would not fit)."""
    return text if len(text) <= ANSWER_LIMIT else text[: ANSWER_LIMIT - 1] + "…"


def share_phone(texts: Texts) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=texts.plain("btn_share_phone"), request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def languages() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text="English", callback_data=LanguagePick(locale="en").pack()),
        InlineKeyboardButton(text="中文", callback_data=LanguagePick(locale="zh").pack()),
    ]])


def pick_product(products: Sequence[Product]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=f"{p.name[:48]} ({p.sku})", callback_data=NotifyPick(product_id=p.id).pack())]
        for p in products
    ])


def waitlist(texts: Texts, entries: Sequence[tuple[WaitlistEntry, Product]]) -> InlineKeyboardMarkup | None:
    if not entries:
        return None
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=texts.plain("btn_leave", name=product.name[:40]),
                              callback_data=WaitlistLeave(entry_id=entry.id).pack())]
        for entry, product in entries
    ])


def order_quantities(prompt_id: int, suggested: int) -> InlineKeyboardMarkup:
    options = sorted({q for q in (suggested, max(1, suggested // 2), suggested * 2) if q > 0})
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text=str(q), callback_data=OrderQty(prompt_id=prompt_id, qty=q).pack()) for q in options
    ]])


def order_etas(texts: Texts, prompt_id: int, lead_time_days: int) -> InlineKeyboardMarkup:
    options = sorted({max(1, lead_time_days), 3, 7, 14})
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(
            text=texts.plain("btn_eta_lead", days=d) if d == lead_time_days else texts.plain("btn_eta_days", days=d),
            callback_data=OrderEta(prompt_id=prompt_id, days=d).pack(),
        )
        for d in options
    ]])
