"""The one catalog writer: product cards created or updated by SKU, for the CSV import and the
shop connectors alike.

Set-based (one lookup, one insert, one executemany update per call). Every write stamps a catalog
version, so the running bot reloads exactly these cards into its search indexes, and a reorder
point that moves past the available stock records its crossing, as a stock change would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import chunked
from bot.inventory.catalog import stamp_catalog_change
from bot.inventory.stock import event_row, record_events
from bot.inventory.thresholds import threshold_moved
from bot.models import Product, utcnow
from bot.shop.orders import UpsertCount

# What a new product holds where its record says nothing.
NEW_PRODUCT: Mapping[str, Any] = {
    "brand": None, "supplier": None, "attributes": {}, "reorder_point": 0, "safety_stock": 0,
    "lead_time_days": 7, "on_hand_total": 0, "reserved_total": 0,
}


async def upsert_products(
    session: AsyncSession, records: Sequence[Mapping[str, Any]], *, new_defaults: Mapping[str, Any] | None = None
) -> UpsertCount:
    """Create or update products by `sku`. An existing product changes only in the fields its
    record names; a new one takes `new_defaults` (then NEW_PRODUCT) for the fields it leaves out,
    and must then have name, category and price_cents."""
    if not records:
        return UpsertCount()
    existing: dict[str, tuple[int, int, int]] = {}
    for batch in chunked(sorted({record["sku"] for record in records})):
        rows = await session.execute(
            select(Product.sku, Product.id, Product.reorder_point, Product.available).where(Product.sku.in_(batch))
        )
        existing.update({sku: (pid, point, available) for sku, pid, point, available in rows})
    now = utcnow()
    version = await stamp_catalog_change(session)
    base = {**NEW_PRODUCT, **(new_defaults or {})}
    inserts, updates, events = [], [], []
    for record in records:
        found = existing.get(record["sku"])
        if found is None:
            inserts.append({**base, "created_at": now, "updated_at": now, "catalog_version": version, **record})
            continue
        product_id, old_point, available = found
        updates.append({"id": product_id, "updated_at": now, "catalog_version": version, **record})
        new_point = record.get("reorder_point", old_point)
        events += [event_row(product_id, kind, available, available, new_point)
                   for kind in threshold_moved(available, old_point, new_point)]
    if inserts:
        await session.execute(Product.__table__.insert(), inserts)
    if updates:
        await session.execute(update(Product), updates)
    await record_events(session, events)
    return UpsertCount(created=len(inserts), updated=len(updates))
