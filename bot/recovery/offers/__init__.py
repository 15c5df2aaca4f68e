"""Stockout offers: `planning` (who is offered what, in batches), `message` (the text and buttons)
and `answers` (the customer's presses). The names callers use are gathered here."""

from bot.recovery.offers.answers import (
    OPEN_OFFER_STATUSES,
    Refused,
    SoldOut,
    Taken,
    cancel_line,
    mark_sent_offers,
    own_open_offer,
    take_substitute,
    wait_for_restock,
)
from bot.recovery.offers.message import OFFER_PREFIX, OfferRenderer, SubView, button_text, render_offer
from bot.recovery.offers.planning import (
    continue_plans,
    current_substitutes,
    plan_batch,
    start_plan,
    stockout_cause,
    with_audience,
)

__all__ = [
    "OFFER_PREFIX", "OPEN_OFFER_STATUSES", "OfferRenderer", "Refused", "SoldOut", "SubView", "Taken",
    "button_text", "cancel_line", "continue_plans", "current_substitutes", "mark_sent_offers",
    "own_open_offer", "plan_batch", "render_offer", "start_plan", "stockout_cause", "take_substitute",
    "wait_for_restock", "with_audience",
]
