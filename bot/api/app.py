"""The integration HTTP API: stock events, orders and customers from a shop's systems, and coupon
redemption from its checkout.

Every route but health is signed (`bot/api/signing.py`) and runs through `IntegrationApi`
(`bot/api/integration.py`): a signature is accepted once, a batch is checked whole and written
only when nothing is wrong (422 lists every problem), and a database that is busy or away answers
503 with Retry-After. Retrying a request is safe: stock events are idempotent by `event_id`,
orders and customers are upserts by `external_id`, and a coupon is redeemed once.

`create_api_app()` builds a stand-alone app; `add_api_routes()` adds the routes and the JSON error
and request-log middlewares to an app the caller owns (the Telegram webhook shares it).
"""

from __future__ import annotations

from aiohttp import web

from bot.api.bodies import MAX_BODY
from bot.api.coupon_routes import add_coupon_routes
from bot.api.health import add_health_route
from bot.api.integration import IntegrationApi
from bot.api.middlewares import add_api_middlewares
from bot.api.planning_routes import add_planning_routes
from bot.api.recovery import add_recovery_routes
from bot.api.shop_routes import add_shop_routes
from bot.api.shop_webhooks import add_shop_webhook_routes
from bot.api.stock_routes import add_stock_routes
from bot.db import Database
from bot.settings import Settings

PREFIX = "/api/v1"

__all__ = ["MAX_BODY", "PREFIX", "add_api_routes", "create_api_app"]


def add_api_routes(app: web.Application, settings: Settings, db: Database) -> IntegrationApi:
    """Add the API's routes, and its JSON-error and request-log middlewares, to `app`."""
    api = IntegrationApi(settings, db)
    add_api_middlewares(app)
    add_health_route(app, db, PREFIX)
    add_stock_routes(app, api, PREFIX)
    add_shop_routes(app, api, PREFIX)
    add_coupon_routes(app, api, PREFIX)
    add_planning_routes(app, api, PREFIX)
    add_recovery_routes(app, api, PREFIX)
    add_shop_webhook_routes(app, settings, db, api.bounded, PREFIX)  # verified by the platforms' own signatures
    return api


def create_api_app(settings: Settings, db: Database) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    add_api_routes(app, settings, db)
    return app
