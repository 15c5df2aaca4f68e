"""POST /api/v1/stock-events: stock levels and movements from a shop's systems, idempotent by
`event_id` (so the body-only signature, whose replay is harmless, is taken too). Receipts settle
what was on its way, as the chat's /receive does (`bot/planning/purchasing.py`)."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.answers import ErrorList, unprocessable
from bot.api.bodies import duplicates, envelope_wrong, parse_batch, parse_json
from bot.api.integration import BatchRejected, IntegrationApi
from bot.api.schemas import StockEventIn, StockEventsBody, item_error
from bot.db import ids_by_key
from bot.inventory.batches import PendingBatch, write_in_batch
from bot.inventory.stock import NotEnoughStock, StockChange, StockError, refused_changes
from bot.models import Product
from bot.planning.purchasing import apply_and_settle

ACTOR = "api"
Events = Sequence[tuple[int, StockEventIn]]


def add_stock_routes(app: web.Application, api: IntegrationApi, prefix: str) -> None:
    async def stock_events(request: web.Request, body: bytes) -> web.Response:
        items, errors = parse_batch(StockEventsBody, StockEventIn, "events", parse_json(body))
        if envelope_wrong(errors):
            return unprocessable(errors)
        return await api.write_batch(items, errors, _check, _write, _dry_run)

    app.router.add_post(f"{prefix}/stock-events", api.signed(stock_events, legacy_ok=True))  # event_id: replays are harmless


async def _check(session: AsyncSession, items: Events) -> ErrorList:
    errors = duplicates(items, lambda e: e.event_id, "event_id", "event_id")
    products = await ids_by_key(session, Product.sku, Product.id, {e.sku for _, e in items})
    return errors + [item_error(i, "sku", f"unknown SKU {e.sku!r}") for i, e in items if e.sku not in products]


async def _dry_run(session: AsyncSession, items: Events) -> ErrorList:
    return _below_zero(items, await refused_changes(session, _stock_changes(items)))


async def _write(session: AsyncSession, items: Events) -> dict[str, int]:
    write_in_batch(session, PendingBatch("API stock-events"))  # weighed against MASS_CONTACT_LIMIT
    try:
        results = await apply_and_settle(session, _stock_changes(items))
    except NotEnoughStock as refused:  # the service lists every event that would go below zero
        raise BatchRejected(_below_zero(items, refused.problems)) from None
    except StockError as exc:
        where = items[exc.index][0] if exc.index is not None else None
        raise BatchRejected([item_error(where, exc.field, str(exc))]) from None
    duplicated = sum(1 for result in results if result.duplicate)
    return {"applied": len(results) - duplicated, "duplicates": duplicated}


def _stock_changes(items: Events) -> list[StockChange]:
    return [
        StockChange(
            e.sku, e.warehouse, delta=e.delta, on_hand=e.on_hand, reason=e.reason,
            actor=ACTOR, event_id=e.event_id,
        )
        for _, e in items
    ]


def _below_zero(items: Events, problems: Sequence[NotEnoughStock]) -> ErrorList:
    """The service's below-zero problems, pointed at the items' indexes in the request."""
    return [
        item_error(items[problem.index][0], problem.field, str(problem))
        for problem in problems if problem.index is not None
    ]
