"""Planning's scheduled runs: record the finished days, forecast, and keep cover up to date.

The scheduler's entry points (bot/jobs.py) hand each run the parts it uses. Each is safe to run
twice or in two processes at once: what has been done is kept in `planning_state` rows (the last
recorded day, the day of the last full forecast, how far the stock ledger was read) and every
write is an upsert.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from bot.clock import shop_today
from bot.db import Database
from bot.delivery.templates import Templates
from bot.models import StockMovement, utcnow
from bot.planning import history
from bot.planning.service import refresh_forecasts, without_forecast
from bot.planning.state import (
    FORECAST_AT,
    FORECAST_DAY,
    MOVEMENTS_SEEN,
    claim_state,
    clear_dirty,
    dirty_products,
    get_state,
    set_state,
)
from bot.planning.warnings import stock_changed
from bot.settings import Settings

log = logging.getLogger(__name__)

MOVEMENTS_PER_RUN = 20_000  # ledger rows a cover run reads at most: short write transactions
# Ids are taken in one order and may commit in another (PostgreSQL sequences): read a little
# behind the watermark again so a late commit is not skipped. Redoing cover is harmless.
OVERLAP = 500
FORECASTS_PER_COVER_RUN = 2_000  # products a cover run forecasts because their stock appeared


async def record_history(db: Database, settings: Settings) -> int:
    async with db.transaction() as session:
        return len(await history.record_days(session, settings.zone))


async def daily_forecast(db: Database, settings: Settings, templates: Templates) -> int:
    """Once per shop day, in whichever process gets there first: record the days that ended, then
    forecast everything. Also the first run after a start, so downtime is caught up at once."""
    await record_history(db, settings)
    today = shop_today(settings.zone).isoformat()
    async with db.transaction() as session:
        if not await claim_state(session, FORECAST_DAY, today):
            return 0
    try:
        made = utcnow()
        done = await refresh_forecasts(db, settings, templates)
        async with db.transaction() as session:
            await set_state(session, FORECAST_AT, made.isoformat())  # the plan is now "as of" then
        return done
    except Exception:
        async with db.transaction() as session:
            await set_state(session, FORECAST_DAY, "")  # not done: the next run tries again
        raise


async def forecast_imported_history(db: Database, settings: Settings, templates: Templates) -> int:
    """A history import (here or in another process) marked products: forecast them again."""
    async with db.read_session() as session:
        product_ids, seen = await dirty_products(session)
    if not product_ids or seen is None:
        return 0
    done = await refresh_forecasts(db, settings, templates, product_ids)
    async with db.transaction() as session:
        await clear_dirty(session, product_ids, seen)
    return done


async def cover_after_stock_changes(db: Database, settings: Settings, templates: Templates) -> int:
    """Stock moved (any process, any source): new cover and early warnings for those products."""
    async with db.transaction() as session:
        marker = await get_state(session, MOVEMENTS_SEEN)
        newest = int(await session.scalar(select(func.max(StockMovement.id))) or 0)
        if marker is None:  # the first forecast reads every level anyway
            await set_state(session, MOVEMENTS_SEEN, str(newest))
            return 0
        last = int(marker)
        if newest <= last:
            return 0
        upto = min(newest, last + MOVEMENTS_PER_RUN)
        product_ids = list(await session.scalars(
            select(StockMovement.product_id)
            .where(StockMovement.id > max(last - OVERLAP, 0), StockMovement.id <= upto)
            .distinct()
        ))
        unforecast = await without_forecast(session, product_ids)
        await stock_changed(session, settings, templates, product_ids)
        await set_state(session, MOVEMENTS_SEEN, str(upto))
    if unforecast:
        # Stock in a warehouse the day's forecast did not know (a product imported since, a new
        # warehouse) would stay out of /plan, the API and the prompt until tomorrow: forecast those
        # products now. After the commit: the forecast writes in transactions of its own.
        # At most a few thousand at a time (a new warehouse stocked with the whole catalog is a
        # whole forecast run): the rest keep their place in the daily run.
        await refresh_forecasts(db, settings, templates,
                                unforecast[:FORECASTS_PER_COVER_RUN])
    return len(product_ids)
