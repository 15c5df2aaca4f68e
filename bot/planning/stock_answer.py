"""What staff see when they ask for a product's stock (/stock, and inline in any chat): one read.

The best catalog hits for the words, each with its stock per warehouse (and in-stock substitutes
when it is out, `stock_views`) and the forecast's days of cover (`product_cover`). It sits in
planning, not inventory, because the cover is planning's: inventory may not read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.inventory.catalog import Catalog, StockView, stock_views
from bot.inventory.substitutes import PriceBand
from bot.planning.cover import ProductCover, product_cover


@dataclass(frozen=True, slots=True)
class StockAnswer:
    product_ids: list[int]  # the search hits, best first (a hit may have no view: deleted since)
    views: list[StockView]
    covers: dict[int, ProductCover]  # forecast demand and days of cover: staff only


async def stock_answer(
    session: AsyncSession, catalog: Catalog, band: PriceBand, zone: tzinfo, words: str, *, limit: int
) -> StockAnswer:
    """The `limit` best hits for `words` (none for empty words), read in one go."""
    hits = await catalog.search.search_async(words, limit) if words else []
    product_ids = [hit.product_id for hit in hits]
    views = await stock_views(session, catalog, product_ids, band=band)
    covers = await product_cover(session, product_ids, zone) if product_ids else {}
    return StockAnswer(product_ids, views, covers)
