"""What to buy or move now, per product and warehouse: /plan, the reorder prompt and the API.

Worked out from the stored policies (reorder point, order-up-to level, learned lead time) and the
stock as it is now, so a suggestion is never older than the last stock change. A transfer comes
first where another warehouse holds more than it needs and moving is faster than the supplier;
what the transfer does not cover is bought, rounded up to the supplier's pack size.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import id_chunks, within
from bot.inventory.cards import pack_size
from bot.models import (
    DemandForecast,
    Product,
    ReplenishmentPolicy,
    StockLevel,
    StockTransfer,
    TransferStatus,
    Warehouse,
)
from bot.planning.replenishment import Policy, order_quantity, plan_transfers

TRANSFER_DAYS = 1.0  # a move between the shop's warehouses arrives the next day
MARGIN_DAYS = 7.0  # a source keeps its lead time's demand plus this much


class Action(enum.StrEnum):
    BUY = "buy"
    TRANSFER = "transfer"


class Reason(enum.StrEnum):
    BELOW_REORDER_POINT = "below_reorder_point"
    COVER_BELOW_LEAD_TIME = "cover_below_lead_time"
    SPARE_STOCK_ELSEWHERE = "spare_stock_elsewhere"


@dataclass(frozen=True, slots=True)
class Line:
    product_id: int
    sku: str
    name: str
    warehouse_id: int
    warehouse: str
    action: Action
    qty: int
    supplier: str | None
    daily_demand: float
    days_of_cover: float | None
    stockout_date: date | None
    reason: Reason
    lead_time_days: float
    pack_size: int = 1
    from_warehouse_id: int | None = None
    from_warehouse: str | None = None


async def candidates(session: AsyncSession) -> list[int]:
    """Products with a warehouse at or below its reorder point, or short of cover, counting what
    is on its way: the only ones that can need anything."""
    # A warehouse that sold the product but never had a level row holds nothing.
    position = func.coalesce(StockLevel.on_hand - StockLevel.reserved + StockLevel.incoming, 0)
    rows = await session.scalars(
        select(ReplenishmentPolicy.product_id)
        .outerjoin(StockLevel, and_(StockLevel.product_id == ReplenishmentPolicy.product_id,
                               StockLevel.warehouse_id == ReplenishmentPolicy.warehouse_id))
        .join(DemandForecast, and_(DemandForecast.product_id == ReplenishmentPolicy.product_id,
                                   DemandForecast.warehouse_id == ReplenishmentPolicy.warehouse_id))
        .where(ReplenishmentPolicy.order_up_to > 0, or_(
            position <= ReplenishmentPolicy.reorder_point,
            DemandForecast.days_of_cover < ReplenishmentPolicy.lead_time_days,
        ))
        .distinct()
    )
    return sorted(rows)


async def suggestions(
    session: AsyncSession, product_ids: Iterable[int] | None = None, *, exclude_transfers: bool = False
) -> list[Line]:
    """Today's suggestions for these products (every product that needs something when None),
    most urgent first."""
    ids = sorted(set(product_ids)) if product_ids is not None else await candidates(session)
    if not ids:
        return []
    rows = []
    moving: set[tuple[int, int, int]] = set()  # (product, source, target) in transit
    for chunk in id_chunks(ids):
        rows += (await session.execute(
            select(ReplenishmentPolicy.product_id, ReplenishmentPolicy.warehouse_id, Warehouse.code,
                   Product.sku, Product.name, Product.supplier, Product.attributes,
                   ReplenishmentPolicy.reorder_point, ReplenishmentPolicy.order_up_to,
                   ReplenishmentPolicy.safety_stock, ReplenishmentPolicy.lead_time_days,
                   DemandForecast.daily_demand, DemandForecast.days_of_cover, DemandForecast.stockout_date,
                   StockLevel.on_hand, StockLevel.reserved, StockLevel.incoming)
            .join(Product, Product.id == ReplenishmentPolicy.product_id)
            .join(Warehouse, Warehouse.id == ReplenishmentPolicy.warehouse_id)
            .join(DemandForecast, and_(DemandForecast.product_id == ReplenishmentPolicy.product_id,
                                       DemandForecast.warehouse_id == ReplenishmentPolicy.warehouse_id))
            .outerjoin(StockLevel, and_(StockLevel.product_id == ReplenishmentPolicy.product_id,
                                        StockLevel.warehouse_id == ReplenishmentPolicy.warehouse_id))
            .where(within(ReplenishmentPolicy.product_id, chunk))
            .order_by(ReplenishmentPolicy.product_id, ReplenishmentPolicy.warehouse_id)
        )).all()
        moving.update(await session.execute(
            select(StockTransfer.product_id, StockTransfer.source_id, StockTransfer.target_id)
            .where(within(StockTransfer.product_id, chunk), StockTransfer.status == TransferStatus.IN_TRANSIT.value)
        ))
    if not rows:
        return []
    return plan_lines(rows, moving, exclude_transfers=exclude_transfers)


def plan_lines(rows: Sequence, moving: set[tuple[int, int, int]], *, exclude_transfers: bool = False) -> list[Line]:  # type: ignore[type-arg]
    pids = np.array([r.product_id for r in rows], dtype=np.int64)
    wids = np.array([r.warehouse_id for r in rows], dtype=np.int64)
    available = np.array([(r.on_hand or 0) - (r.reserved or 0) for r in rows], dtype=float)
    incoming = np.array([r.incoming or 0 for r in rows], dtype=float)
    demand = np.array([r.daily_demand for r in rows], dtype=float)
    rop = np.array([r.reorder_point for r in rows], dtype=float)
    lead = np.array([r.lead_time_days for r in rows], dtype=float)
    index = {(int(p), int(w)): i for i, (p, w) in enumerate(zip(pids, wids, strict=True))}
    moved = np.zeros(len(rows))
    transfers = []
    if not exclude_transfers:
        # What is on its way counts: a warehouse waiting for a transfer needs no second one.
        for transfer in plan_transfers(pids, wids, available + incoming, demand, rop, lead,
                                       transfer_days=TRANSFER_DAYS, margin_days=MARGIN_DAYS):
            source, target = index[(transfer.product, transfer.source)], index[(transfer.product, transfer.target)]
            if lead[target] <= TRANSFER_DAYS:
                continue  # the supplier is as fast: nothing gained by moving
            # Never back and forth: not against a move in transit, nor out of a warehouse that
            # is itself waiting for one.
            if (transfer.product, transfer.target, transfer.source) in moving or any(
                p == transfer.product and t == transfer.source for p, _, t in moving
            ):
                continue
            moved[source] -= transfer.qty
            moved[target] += transfer.qty
            transfers.append((transfer, source, target))
    pol = Policy(reorder_point=rop, order_up_to=np.array([r.order_up_to for r in rows], dtype=float),
                 safety_stock=np.array([r.safety_stock for r in rows], dtype=float))
    packs = np.array([pack_size(r.attributes) for r in rows], dtype=np.int64)
    position = available + incoming + moved
    buy = order_quantity(position, pol, packs)
    lines = []
    for transfer, source, target in transfers:
        lines.append(_line(rows[target], Action.TRANSFER, int(transfer.qty), Reason.SPARE_STOCK_ELSEWHERE,
                           int(packs[target]), rows[source]))
    for i, qty in enumerate(buy.tolist()):
        if qty > 0:
            cover = rows[i].days_of_cover
            reason = (Reason.COVER_BELOW_LEAD_TIME if cover is not None and cover < lead[i]
                      else Reason.BELOW_REORDER_POINT)
            lines.append(_line(rows[i], Action.BUY, int(qty), reason, int(packs[i])))
    far = float("inf")
    return sorted(lines, key=lambda line: (line.days_of_cover if line.days_of_cover is not None else far,
                                           line.sku, line.warehouse, line.action))


def _line(row, action: Action, qty: int, reason: Reason, pack: int, source=None) -> Line:  # type: ignore[no-untyped-def]
    return Line(
        product_id=row.product_id, sku=row.sku, name=row.name, warehouse_id=row.warehouse_id,
        warehouse=row.code, action=action, qty=qty, supplier=row.supplier, daily_demand=float(row.daily_demand),
        days_of_cover=row.days_of_cover, stockout_date=row.stockout_date, reason=reason,
        lead_time_days=float(row.lead_time_days), pack_size=pack,
        from_warehouse_id=source.warehouse_id if source is not None else None,
        from_warehouse=source.code if source is not None else None,
    )


def as_json(line: Line) -> dict[str, object]:
    """A suggestion as `GET /api/v1/replenishment` gives it; optional fields only when set."""
    out: dict[str, object] = {
        "sku": line.sku, "warehouse": line.warehouse, "action": line.action.value, "qty": line.qty,
        "daily_demand": round(line.daily_demand, 3),
        "days_of_cover": None if line.days_of_cover is None else round(line.days_of_cover, 1),
        "reason": line.reason.value,
    }
    if line.from_warehouse is not None:
        out["from_warehouse"] = line.from_warehouse
    if line.supplier is not None and line.action is Action.BUY:
        out["supplier"] = line.supplier
    if line.stockout_date is not None:
        out["stockout_date"] = line.stockout_date.isoformat()
    return out
