"""Offered against held out: the figures of /stats, the /report CSV and GET /api/v1/recovery.

The cohort is every customer who took part in a hold-out draw (`StockoutOffer.randomised`) in the
period, in the group the draw put them in; customers who never take part (VIPs unless
HOLDOUT_VIPS, those who cannot be messaged, offers from before the control group) are left out,
so the two groups differ only by the offer. A customer in two stockouts counts twice, once per
draw.

A purchase counts exactly as the funnel counts one (bot/recovery/funnel.py: an order line of the
product or of a substitute it offered, or would have offered, created or fulfilled within
ATTRIBUTION_DAYS), the same way for both groups; its revenue is the line's quantity at the
product's current price. From an offered customer's revenue the discount of a coupon of that
offer that was redeemed is taken off: the coupon is what the offer cost. The statistics are in
bot/recovery/uplift.py. Reads only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Coupon, OfferStatus, StockoutOffer, cents_to_decimal
from bot.recovery import uplift
from bot.recovery.funnel import attributable, purchases_since


@dataclass(frozen=True, slots=True)
class Comparison:
    since: datetime
    until: datetime
    window_days: int
    percent: int  # HOLDOUT_PERCENT now: 0 means the control group is off
    result: uplift.Uplift

    @property
    def has_control_group(self) -> bool:
        return self.result.held_out.customers > 0


async def build(session: AsyncSession, *, since: datetime, until: datetime, attribution_days: int,
                percent: int, min_group: int = uplift.MIN_GROUP) -> Comparison:
    """The comparison for the draws made in [since, until)."""
    drawn = (
        await session.execute(
            select(StockoutOffer.id, StockoutOffer.customer_id, StockoutOffer.product_id,
                   StockoutOffer.substitute_ids, StockoutOffer.chosen_product_id, StockoutOffer.created_at,
                   StockoutOffer.status, Coupon.redeemed_value_cents, Coupon.redeemed_at)
            .outerjoin(Coupon, Coupon.id == StockoutOffer.coupon_id)
            .where(StockoutOffer.randomised.is_(True), StockoutOffer.created_at >= since,
                   StockoutOffer.created_at < until)
            .order_by(StockoutOffer.id)
        )
    ).all()
    purchases = (
        await purchases_since(session, {row.customer_id for row in drawn}, min(row.created_at for row in drawn))
        if drawn else {}
    )
    window = timedelta(days=attribution_days)
    held_out = np.fromiter((row.status == OfferStatus.HELD_OUT.value for row in drawn), dtype=bool, count=len(drawn))
    bought = np.zeros(len(drawn), dtype=bool)
    revenue = np.zeros(len(drawn), dtype=np.int64)
    for i, row in enumerate(drawn):
        hits = attributable(row, purchases.get(row.customer_id, ()), window)
        bought[i] = bool(hits)
        revenue[i] = sum({p.line_id: p.value_cents for p in hits}.values())  # a line counts once
        if row.redeemed_at is not None:
            revenue[i] -= row.redeemed_value_cents or 0
    result = uplift.compare(bought[~held_out], revenue[~held_out], bought[held_out], revenue[held_out],
                            min_group=min_group)
    return Comparison(since, until, attribution_days, percent, result)


def _money(cents: int | float) -> str:
    return str(cents_to_decimal(int(cents)))


def as_json(comparison: Comparison) -> dict[str, Any]:
    """GET /api/v1/recovery: shares as fractions (4 places), money as decimal strings."""
    r = comparison.result

    def group(g: uplift.Group) -> dict[str, Any]:
        return {"customers": g.customers, "bought": g.bought, "revenue": _money(g.revenue_cents)}

    return {
        "window_days": comparison.window_days,
        "since": comparison.since.isoformat(),
        "until": comparison.until.isoformat(),
        "offered": group(r.offered),
        "held_out": group(r.held_out),
        "uplift": None if r.uplift is None else {
            "value": round(r.uplift.value, 4), "low": round(r.uplift.low, 4), "high": round(r.uplift.high, 4)},
        "incremental_revenue": None if r.incremental_revenue_cents is None else {
            "value": _money(r.incremental_revenue_cents.value), "low": _money(r.incremental_revenue_cents.low),
            "high": _money(r.incremental_revenue_cents.high)},
    }


CSV_COLUMNS = ("measure", "value", "low", "high")


def csv_rows(comparison: Comparison) -> list[tuple[str, str, str, str]]:
    """The comparison as the /report CSV's rows: one measure a row, an empty value where there
    are too few customers to say."""
    r = comparison.result
    rows = [("window_days", str(comparison.window_days), "", "")]
    for name, g in (("offered", r.offered), ("held_out", r.held_out)):
        rows += [
            (f"{name}_customers", str(g.customers), "", ""),
            (f"{name}_bought", str(g.bought), "", ""),
            (f"{name}_share", "" if g.share is None else f"{g.share:.4f}", "", ""),
            (f"{name}_revenue", _money(g.revenue_cents), "", ""),
        ]
    if r.uplift is None or r.incremental_revenue_cents is None:
        rows += [("uplift", "", "", ""), ("incremental_revenue", "", "", "")]
    else:
        u, m = r.uplift, r.incremental_revenue_cents
        rows += [("uplift", f"{u.value:.4f}", f"{u.low:.4f}", f"{u.high:.4f}"),
                 ("incremental_revenue", _money(m.value), _money(m.low), _money(m.high))]
    return rows
