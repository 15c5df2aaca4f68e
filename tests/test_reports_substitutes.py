"""Slow movers feed recovery: in-stock slow movers rank a little higher as substitutes."""

from __future__ import annotations

from datetime import timedelta

from bot.db import Database
from bot.inventory.cards import ProductCard
from bot.inventory.catalog import Catalog, substitutes_for
from bot.inventory.stock import warehouse_ids
from bot.models import DemandForecast, SalesDay
from bot.clock import shop_today
from bot.reports.slow_movers import SLOW_MOVER_BOOST, refresh_slow_movers
from bot.inventory.substitutes import SubstituteIndex
from tests.factories import add_product


def card(product_id: int, name: str) -> ProductCard:
    return ProductCard(product_id=product_id, sku=f"S{product_id}", name=name, category="lips", brand=None,
                       price_cents=1000, attributes={}, safety_stock=0)


WANTED = card(1, "Velvet Lipstick 02")
SHADE_1 = card(2, "Velvet Lipstick 01")
SHADE_3 = card(3, "Velvet Lipstick 03")  # exactly as close to WANTED as SHADE_1
BRUSH = card(4, "Makeup Brush Set")  # a poor match


def test_the_boost_decides_between_equals_and_never_lifts_a_poor_match() -> None:
    index = SubstituteIndex([WANTED, SHADE_1, SHADE_3, BRUSH])
    stock = {2: 5, 3: 5, 4: 5}
    assert [s.card.product_id for s in index.choose(WANTED, stock, limit=2)] == [2, 3]  # a tie: by SKU
    boosted = index.choose(WANTED, stock, limit=2, boost={3: SLOW_MOVER_BOOST, 4: SLOW_MOVER_BOOST})
    assert [s.card.product_id for s in boosted] == [3, 2]
    assert 4 not in [s.card.product_id for s in index.choose(WANTED, stock, limit=2, boost={4: SLOW_MOVER_BOOST})]


async def test_slow_movers_in_stock_are_preferred_when_a_product_runs_out(db: Database, settings) -> None:  # type: ignore[no-untyped-def]
    today = shop_today(settings.zone)
    async with db.transaction() as session:
        wanted = await add_product(session, "LIP-1", name="Velvet Lipstick 02", stock={"SH": 0})
        selling = await add_product(session, "LIP-2", name="Velvet Lipstick 01", stock={"SH": 9})
        slow = await add_product(session, "LIP-3", name="Velvet Lipstick 03", stock={"SH": 9})
        sh = (await warehouse_ids(session, ["SH"], create=False))["SH"]
        # 90 days of history. LIP-2 sells every day; LIP-3 last sold 70 days ago.
        for back in range(1, 91):
            day = today - timedelta(days=back)
            session.add(SalesDay(product_id=selling.id, warehouse_id=sh, day=day, sold=1, on_hand=9))
            session.add(SalesDay(product_id=slow.id, warehouse_id=sh, day=day, sold=1 if back == 70 else 0, on_hand=9))
        # WANTED is covered for a year by its forecast, but has nothing on hand: not a slow mover.
        session.add(DemandForecast(product_id=wanted.id, warehouse_id=sh, daily_demand=0.1, days_of_cover=365.0))
    catalog = Catalog()
    await catalog.refresh(db)

    async with db.read_session() as session:
        before = [p.sku for p, _, _ in await substitutes_for(session, catalog, wanted, limit=1)]
    assert await refresh_slow_movers(db, settings, catalog) == 1
    assert catalog.substitute_boost == {slow.id: SLOW_MOVER_BOOST}
    async with db.read_session() as session:
        after = [p.sku for p, _, _ in await substitutes_for(session, catalog, wanted, limit=1)]
    assert (before, after) == (["LIP-2"], ["LIP-3"])
