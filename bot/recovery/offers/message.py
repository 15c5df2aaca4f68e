"""Stockout offers, the message: its text and buttons, for many customers at once or for one.

Labels are rendered once per locale per product; buttons are plain text (Telegram shows button
labels as written), so they carry no HTML escaping.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.delivery.markup import Button, keyboard, pack
from bot.delivery.templates import Templates, money
from bot.inventory.stock import incoming_eta
from bot.models import Coupon, Customer, OrderLine, Product, StockoutOffer

OFFER_PREFIX = "of"
MAX_BUTTON_NAME = 40


@dataclass(frozen=True, slots=True)
class SubView:
    product_id: int
    sku: str
    name: str
    price: Decimal
    diff: Decimal  # substitute price - product price



class OfferRenderer:
    """Renders one product's offer for many customers: the shared parts are computed once."""

    def __init__(self, templates: Templates, product: Product, subs: Sequence[SubView], eta: datetime | None) -> None:
        self.templates = templates
        self.product = product
        self.subs = list(subs)
        self.eta = eta
        self._labels: dict[str, dict[str, str]] = {}

    def _label(self, locale: str, key: str, **context: Any) -> str:
        return self.templates.label(locale, key, **context)

    def text(self, locale: str, *, name: str, qty: int, has_line: bool, coupon: Coupon | None,
             done: str | None = None) -> str:
        return self.templates.render(
            locale, "stockout_offer", product=self.product, customer_name=name, qty=qty, has_line=has_line,
            subs=self.subs, eta=self.eta, coupon=coupon, done=Markup(done) if done else None,
        )

    def buttons(self, locale: str, offer_id: int, *, has_line: bool) -> dict[str, Any] | None:
        labels = self._labels.get(locale)
        if labels is None:
            labels = self._labels[locale] = {
                **{f"take{s.product_id}": button_text(self._label(
                    locale, "recovery_btn_take", name=_short(s.name), price=_money(s.price)))
                   for s in self.subs},
                "wait": button_text(self._label(locale, "recovery_btn_wait")),
                "cancel": button_text(self._label(locale, "recovery_btn_cancel")),
            }
        rows = [[Button(labels[f"take{s.product_id}"], pack(OFFER_PREFIX, "take", offer_id, s.product_id))]
                for s in self.subs]
        rows.append([Button(labels["wait"], pack(OFFER_PREFIX, "wait", offer_id, 0))])
        if has_line:
            rows.append([Button(labels["cancel"], pack(OFFER_PREFIX, "cancel", offer_id, 0))])
        return keyboard(rows)


def button_text(label: str) -> str:
    """Buttons are plain text: undo the HTML escaping labels get."""
    return html.unescape(label)


def _short(name: str) -> str:
    return name if len(name) <= MAX_BUTTON_NAME else name[: MAX_BUTTON_NAME - 1] + "…"


def _money(value: Decimal) -> str:
    return money(value)


async def renderer_for(session: AsyncSession, templates: Templates, offer: StockoutOffer) -> OfferRenderer:
    """A renderer for an existing offer, with the substitutes it offers now."""
    product = await session.get(Product, offer.product_id)
    assert product is not None
    ids = list(offer.substitute_ids or [])
    loaded = {p.id: p for p in await session.scalars(select(Product).where(Product.id.in_(ids)))} if ids else {}
    subs = [SubView(p.id, p.sku, p.name, p.price, p.price - product.price) for i in ids if (p := loaded.get(i))]
    return OfferRenderer(templates, product, subs, await incoming_eta(session, product.id))


async def render_offer(
    session: AsyncSession, templates: Templates, offer: StockoutOffer, locale: str, *, done: str | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """The offer's text (with `done`, the outcome, when answered) and its buttons (none when done)."""
    renderer = await renderer_for(session, templates, offer)
    customer = await session.get(Customer, offer.customer_id)
    coupon = await session.get(Coupon, offer.coupon_id) if offer.coupon_id else None
    qty = await line_qty(session, offer)
    has_line = offer.order_line_id is not None
    text = renderer.text(locale, name=customer.name if customer else "", qty=qty, has_line=has_line,
                         coupon=coupon, done=done)
    markup = None if done else renderer.buttons(locale, offer.id, has_line=has_line)
    return text, markup


async def line_qty(session: AsyncSession, offer: StockoutOffer) -> int:
    if offer.order_line_id is None:
        return 0
    return int(await session.scalar(select(OrderLine.qty).where(OrderLine.id == offer.order_line_id)) or 0)
