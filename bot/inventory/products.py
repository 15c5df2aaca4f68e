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
    session: AsyncSession, records: Sequence[Mapping[str, Any]], *, new_defaults: Mapping[str, Any] | None = None,
    skip_unchanged: bool = False,
) -> UpsertCount:
    """Create or update products by `sku`. An existing product changes only in the fields its
    record names; a new one takes `new_defaults` (then NEW_PRODUCT) for the fields it leaves out,
    and must then have name, category and price_cents. With `skip_unchanged`, a product whose
    named fields already hold the record's values is left alone and counted as unchanged (the
    import's report); without it every existing product is written (a connector's delivery)."""
    if not records:
        return UpsertCount()
    compared = sorted({name for record in records for name in record} - {"sku"}) if skip_unchanged else []
    existing: dict[str, tuple[int, int, int]] = {}
    current: dict[str, dict[str, Any]] = {}
    for batch in chunked(sorted({record["sku"] for record in records})):
        rows = await session.execute(
            select(Product.sku, Product.id, Product.reorder_point, Product.available,
                   *(getattr(Product, name) for name in compared))
            .where(Product.sku.in_(batch))
        )
        for sku, pid, point, available, *values in rows:
            existing[sku] = (pid, point, available)
            current[sku] = {"sku": sku, **dict(zip(compared, values, strict=True))}
    now = utcnow()
    version = await stamp_catalog_change(session)
    base = {**NEW_PRODUCT, **(new_defaults or {})}
    inserts, updates, events = [], [], []
    unchanged = 0
    for record in records:
        found = existing.get(record["sku"])
        if found is None:
            inserts.append({**base, "created_at": now, "updated_at": now, "catalog_version": version, **record})
            continue
        if skip_unchanged and all(current[record["sku"]][name] == value for name, value in record.items()):
            unchanged += 1
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
    return UpsertCount(created=len(inserts), updated=len(updates), unchanged=unchanged)
