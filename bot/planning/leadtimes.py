"""Lead times learned from the shop's own orders: "ordered" with an ETA, then the receipt.

Each received purchase order is one sample per supplier. Suggestions use the measured p90 once a
supplier has enough receipts (`learned_lead_time` decides), the catalog's lead time before that.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta, tzinfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import PurchaseOrder, utcnow
from bot.planning.replenishment import LeadTimeStats, learned_lead_time

SAMPLE_DAYS = 365  # receipts older than this no longer describe the supplier

Sample = tuple[date, date | None, date]


@dataclass(frozen=True, slots=True)
class SupplierTimes:
    samples: dict[str | None, list[Sample]]

    def stats(self, supplier: str | None, catalog_days: float) -> LeadTimeStats:
        return learned_lead_time(self.samples.get(supplier, []), catalog_days)

    def lead_time(self, supplier: str | None, catalog_days: float) -> float:
        return float(self.stats(supplier, catalog_days).days)


async def supplier_samples(
    session: AsyncSession, zone: tzinfo, suppliers: Iterable[str | None] | None = None
) -> SupplierTimes:
    query = select(PurchaseOrder.supplier, PurchaseOrder.ordered_at, PurchaseOrder.eta, PurchaseOrder.received_at).where(
        PurchaseOrder.received_at.is_not(None), PurchaseOrder.received_at >= utcnow() - timedelta(days=SAMPLE_DAYS)
    )
    if suppliers is not None:
        wanted = [s for s in set(suppliers) if s is not None]
        query = query.where(PurchaseOrder.supplier.in_(wanted))
    found: dict[str | None, list[Sample]] = defaultdict(list)
    for supplier, ordered, eta, received in await session.execute(query.order_by(PurchaseOrder.received_at)):
        found[supplier].append((
            ordered.astimezone(zone).date(), eta.astimezone(zone).date() if eta else None,
            received.astimezone(zone).date(),
        ))
    return SupplierTimes(dict(found))
