"""The integration HTTP API: stock events, orders and customers from a shop's systems, and coupon
redemption from its checkout.

Every route but health is signed (`bot/api/signing.py`), and each signature is accepted once, by
all processes together (`bot/seen_once.py`). A batch is checked whole (shapes first,
then references and stock levels against the database) inside one write transaction, and is
written only when nothing is wrong: any problem answers 422 listing every problem, and the
transaction rolls back. Retrying a request is safe: stock events are idempotent by `event_id`,
orders and customers are upserts by `external_id`, and a coupon is redeemed once.

`create_api_app()` builds a stand-alone app; `add_api_routes()` adds the routes and the JSON error
and request-log middlewares to an app the caller owns (the Telegram webhook shares it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.schemas import (
    CustomerIn,
    CustomersBody,
    OrderIn,
    OrdersBody,
    RedeemBody,
    StockEventIn,
    StockEventsBody,
    item_error,
    validation_errors,
)
from bot.api.recovery import add_recovery_routes
from bot.api.shop_webhooks import add_shop_webhook_routes
from bot.api.signing import HEADER, Signed, keys_of, verify
from bot.db import POOL_SIZE, Database, ids_by_key
from bot.inventory.batches import PendingBatch, write_in_batch
from bot.planning.state import forecast_as_of
from bot.inventory.stock import NotEnoughStock, StockChange, StockError, apply_changes, refused_changes
from bot.logs import escape
from bot.models import Product
from bot.planning.purchasing import settle_applied
from bot.planning.suggestions import as_json, suggestions
from bot.recovery.redemption import RedeemStatus, redeem_coupon
from bot.seen_once import SIGNATURES, SeenOnceStore
from bot.settings import Settings
from bot.shop.customers import CustomerInput, upsert_customers
from bot.shop.orders import LineInput, OrderInput, UnknownReference, check_references, upsert_orders

log = logging.getLogger("bot.api")

PREFIX = "/api/v1"
HEALTH_DB_TIMEOUT = 5  # seconds: a health check that hangs is worse than one that says no
MAX_BODY = 1024 * 1024  # 1 MiB
ACTOR = "api"

# Load: at most API_CONCURRENCY requests do database work at once (half the pool: the rest is the
# bot's own, see bot/db.py); the others queue for up to QUEUE_WAIT_S, then get 503 + Retry-After.
API_CONCURRENCY = max(1, POOL_SIZE // 2)
QUEUE_WAIT_S = 5.0
RETRY_AFTER_S = 2
FORECAST_RETRY_AFTER = 30  # seconds: the first forecast runs within a minute of the start
_BUSY = "the server is busy; retry after the Retry-After seconds"
_UNAVAILABLE = "the database is unavailable; retry after the Retry-After seconds"
UNAVAILABLE_RETRY_AFTER_S = 5
# PostgreSQL states that mean "too busy right now, the same request may well work later".
_RETRYABLE_SQLSTATES = frozenset({"55P03", "57014", "40001", "40P01"})  # lock timeout, cancelled, serialization, deadlock

LOGGED_PATH_CHARS = 120
_COUPON_IN_PATH = re.compile(r"(/coupons/)[^/]*", re.IGNORECASE)
_MIDDLEWARES_KEY = web.AppKey("stockbot_api_middlewares", bool)
# The request's checked signature, claimed in its unit of work (aiohttp runs each request in a task
# of its own, so this is per request).
_SIGNED: ContextVar[Signed] = ContextVar("stockbot_signed")
Item = TypeVar("Item", bound=BaseModel)
ErrorList = list[dict[str, Any]]


# --- errors --------------------------------------------------------------------------------------


class BatchRejected(Exception):
    """Raised inside the write transaction so it rolls back; answered as 422."""

    def __init__(self, errors: ErrorList) -> None:
        super().__init__(f"{len(errors)} problem(s)")
        self.errors = errors


class _Answer(Exception):
    """An early answer (400, 413, ...) from deep inside a handler."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def _busy() -> web.Response:
    return _error(503, _BUSY, **{"Retry-After": str(RETRY_AFTER_S)})


def _unavailable() -> web.Response:
    return _error(503, _UNAVAILABLE, **{"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)})


def _is_overload(exc: DBAPIError) -> bool:
    """A lock or connection wait that ran out (SQLite's busy timeout, PostgreSQL's lock_timeout):
    the request was refused for load, not because anything is wrong with it."""
    if "database is locked" in str(exc.orig):
        return True
    return getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _unprocessable(errors: ErrorList) -> web.Response:
    ordered = sorted(errors, key=lambda e: -1 if e["index"] is None else e["index"])
    return web.json_response({"errors": ordered}, status=422)


_REASONS = {
    404: "not found",
    405: "method not allowed",
    413: f"request body larger than {MAX_BODY} bytes",
}


@web.middleware
async def _json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return _error(exc.status, _REASONS.get(exc.status, exc.reason.lower()), **headers)
    except _Answer as answer:
        return _error(answer.status, answer.message)


@web.middleware
async def _log_requests(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """One line per request: method, route pattern (not the path: it may hold a coupon code),
    status and time. Never bodies, headers or secrets."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, _route_of(request))
        status = 500
        return _error(500, "internal error")
    finally:
        log.info(
            "%s %s %d %.1fms %s", request.method, _route_of(request), status,
            (time.perf_counter() - started) * 1000, request.remote or "-",
        )


def _route_of(request: web.Request) -> str:
    """What a log line may say of the request's path: the route's pattern, or for a path no route
    took, the path without its query string, a coupon code (`/coupons/CODE/redeem/`, one slash
    too many) masked, line breaks and other control characters escaped, cut short."""
    resource = request.match_info.route.resource if request.match_info.route else None
    if resource is not None:
        return resource.canonical
    return escape(_COUPON_IN_PATH.sub(r"\1{code}", request.path))[:LOGGED_PATH_CHARS]


# --- request body --------------------------------------------------------------------------------


async def _read_body(request: web.Request) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed MAX_BODY."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _Answer(413, _REASONS[413])
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_BODY:
            raise _Answer(413, _REASONS[413])
    return bytes(body)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json(body: bytes, *, empty: Any = None) -> Any:
    if not body.strip() and empty is not None:
        return empty
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise _Answer(400, f"malformed JSON: {exc}"[:300]) from None


def _parse_batch(
    envelope: type[BaseModel], item: type[Item], key: str, data: Any, context: dict[str, Any] | None = None
) -> tuple[list[tuple[int, Item]], ErrorList]:
    """Validate the whole body; return the valid items with their indexes, and every error.

    Items that are well-formed still go through the reference checks when others are not, so one
    422 lists every problem of the batch.
    """
    try:
        body = envelope.model_validate(data, context=context)
        return list(enumerate(getattr(body, key))), []
    except ValidationError as exc:
        errors = validation_errors(exc, key)
    if any(error["index"] is None for error in errors):
        return [], errors  # the envelope itself is wrong: nothing to check item by item
    bad = {error["index"] for error in errors}
    good = [
        (index, item.model_validate(raw, context=context))
        for index, raw in enumerate(data[key])
        if index not in bad
    ]
    return good, errors


def _duplicates(items: Sequence[tuple[int, Any]], key: Callable[[Any], Any], field: str, what: str) -> ErrorList:
    first: dict[Any, int] = {}
    errors = []
    for index, item in items:
        value = key(item)
        if value is None:
            continue
        if value in first:
            errors.append(item_error(index, field, f"duplicate {what} {value!r} (first at index {first[value]})"))
        else:
            first[value] = index
    return errors


def _without(items: list[tuple[int, Item]], errors: ErrorList) -> list[tuple[int, Item]]:
    """The items no error points at."""
    bad = {error["index"] for error in errors}
    return [(index, item) for index, item in items if index not in bad]


def _stock_changes(items: Sequence[tuple[int, StockEventIn]]) -> list[StockChange]:
    return [
        StockChange(
            e.sku, e.warehouse, delta=e.delta, on_hand=e.on_hand, reason=e.reason,
            actor=ACTOR, event_id=e.event_id,
        )
        for _, e in items
    ]


def _below_zero(items: Sequence[tuple[int, StockEventIn]], problems: Sequence[NotEnoughStock]) -> ErrorList:
    """The service's below-zero problems, pointed at the items' indexes in the request."""
    return [
        item_error(items[problem.index][0], problem.field, str(problem))
        for problem in problems if problem.index is not None
    ]


# --- the routes ----------------------------------------------------------------------------------

Handler = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


class IntegrationApi:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._keys = keys_of(settings.WEBHOOK_SECRET.get_secret_value()) if settings.WEBHOOK_SECRET else []
        self._slots = asyncio.Semaphore(API_CONCURRENCY)
        self._signatures = SeenOnceStore(SIGNATURES)

    def signed(self, handler: Handler, *, legacy_ok: bool = False) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """`handler` behind the signature check; `legacy_ok` also takes the body-only form (only
        where a replay is harmless). Every refusal is the same 401 before the handler runs, so it
        tells nothing about what the route would have found (which coupon codes exist)."""

        async def check(request: web.Request) -> web.StreamResponse:
            if not self._keys:
                return _error(503, "the integration API is off: WEBHOOK_SECRET is not set")
            try:
                body = await _read_body(request)
                signed = verify(self._keys, request.method, request.raw_path, body, request.headers.get(HEADER),
                                legacy_ok=legacy_ok)
                if signed is None:
                    return _error(401, f"bad, expired or missing {HEADER} signature")
                _SIGNED.set(signed)
                return await self.bounded(handler, request, body)
            except _Answer as answer:
                return _error(answer.status, answer.message)

        check.__name__ = handler.__name__
        check.__doc__ = handler.__doc__
        return check

    @asynccontextmanager
    async def _unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """The request's write transaction, which first claims its signature: the claim commits
        with the request's changes or not at all, so a request that was refused (422, or 503 for
        load) may be sent again byte for byte, and one that changed something never again."""
        async with self.db.transaction() as session:
            await self._claim(session)
            yield session

    async def _claim(self, session: AsyncSession) -> None:
        signed = _SIGNED.get()
        if signed.once_key is None:
            return  # the body-only form, where the route makes a replay harmless
        keep_until = datetime.fromtimestamp(signed.keep_until, UTC)
        if not await self._signatures.claim_in(session, signed.once_key, keep_until):
            raise _Answer(401, f"this {HEADER} signature was used before; sign each request anew")

    async def bounded(self, handler: Handler, request: web.Request, body: bytes) -> web.StreamResponse:
        """Run `handler` in one of the API's slots; answer 503 rather than fail when overloaded."""
        try:
            async with asyncio.timeout(QUEUE_WAIT_S):
                await self._slots.acquire()
        except TimeoutError:
            log.warning("%s %s: no slot within %.0fs; answered 503", request.method, _route_of(request), QUEUE_WAIT_S)
            return _busy()
        try:
            return await handler(request, body)
        except PoolTimeout:
            log.warning("%s %s: no database connection in time; answered 503", request.method, _route_of(request))
            return _busy()
        except DBAPIError as exc:
            if self.db.trouble.note(exc):  # logged once for the whole spell
                return _unavailable()
            if not _is_overload(exc):
                raise
            log.warning("%s %s: %s; answered 503", request.method, _route_of(request), type(exc.orig).__name__)
            return _busy()
        except OSError as exc:  # the driver could not connect at all (PostgreSQL down)
            if not self.db.trouble.note(exc):
                raise
            return _unavailable()
        finally:
            self._slots.release()

    async def _write_batch(
        self, items: list[tuple[int, Any]], errors: ErrorList, check: Callable[..., Awaitable[ErrorList]],
        write: Callable[..., Awaitable[dict[str, int]]], dry_run: Callable[..., Awaitable[ErrorList]] | None = None,
    ) -> web.Response:
        """`check` finds what is wrong before writing; `write` may find more (stock going below
        zero) and raise BatchRejected. `dry_run` finds those without writing, for a batch that
        `check` rejects, so that its 422 still lists every problem."""
        try:
            async with self._unit_of_work() as session:
                errors = errors + await check(session, items)
                if errors and dry_run is not None:
                    errors += await dry_run(session, _without(items, errors))
                if errors:
                    raise BatchRejected(errors)
                result = await write(session, items)
        except BatchRejected as rejected:
            return _unprocessable(rejected.errors)
        except IntegrityError:
            log.warning("batch lost a race with a concurrent writer; rolled back")
            return _error(409, "a concurrent request wrote the same records; nothing was applied, retry")
        return web.json_response(result)

    # health -------------------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        # A bot that cannot reach its database is not healthy, whatever the process says. During
        # a spell of trouble it must take a write too: a full disk still answers reads.
        unavailable = web.json_response({"status": "unavailable"}, status=503,
                                        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)})
        try:
            async with asyncio.timeout(HEALTH_DB_TIMEOUT):
                await self.db.probe(write=self.db.trouble.unavailable)
        except TimeoutError:  # a busy database: one line, not a traceback for every probe
            log.warning("health: the database did not answer within %s s", HEALTH_DB_TIMEOUT)
            return unavailable
        except Exception as exc:  # any failure to answer counts; the reason is logged, never returned
            if not self.db.trouble.note(exc):
                log.warning("health: the database does not answer", exc_info=True)
            return unavailable
        self.db.trouble.recovered()
        return web.json_response({"status": "ok"})

    # stock events -------------------------------------------------------------------------------

    async def stock_events(self, request: web.Request, body: bytes) -> web.Response:
        items, errors = _parse_batch(StockEventsBody, StockEventIn, "events", _json(body))
        if any(error["index"] is None for error in errors):
            return _unprocessable(errors)
        return await self._write_batch(items, errors, self._check_stock, self._write_stock, self._dry_run_stock)

    async def _check_stock(self, session: AsyncSession, items: list[tuple[int, StockEventIn]]) -> ErrorList:
        errors = _duplicates(items, lambda e: e.event_id, "event_id", "event_id")
        products = await ids_by_key(session, Product.sku, Product.id, {e.sku for _, e in items})
        return errors + [item_error(i, "sku", f"unknown SKU {e.sku!r}") for i, e in items if e.sku not in products]

    async def _dry_run_stock(self, session: AsyncSession, items: list[tuple[int, StockEventIn]]) -> ErrorList:
        return _below_zero(items, await refused_changes(session, _stock_changes(items)))

    async def _write_stock(self, session: AsyncSession, items: list[tuple[int, StockEventIn]]) -> dict[str, int]:
        write_in_batch(session, PendingBatch("API stock-events"))  # weighed against MASS_CONTACT_LIMIT
        try:
            results = await apply_changes(session, _stock_changes(items))
        except NotEnoughStock as refused:  # the service lists every event that would go below zero
            raise BatchRejected(_below_zero(items, refused.problems)) from None
        except StockError as exc:
            where = items[exc.index][0] if exc.index is not None else None
            raise BatchRejected([item_error(where, exc.field, str(exc))]) from None
        await settle_applied(session, results)  # receipts settle what was on its way, as /receive does
        duplicates = sum(1 for result in results if result.duplicate)
        return {"applied": len(results) - duplicates, "duplicates": duplicates}

    # orders -------------------------------------------------------------------------------------

    async def orders(self, request: web.Request, body: bytes) -> web.Response:
        items, errors = _parse_batch(OrdersBody, OrderIn, "orders", _json(body))
        if any(error["index"] is None for error in errors):
            return _unprocessable(errors)
        return await self._write_batch(items, errors, self._check_orders, self._write_orders)

    async def _check_orders(self, session: AsyncSession, items: list[tuple[int, OrderIn]]) -> ErrorList:
        errors = _duplicates(items, lambda o: o.external_id, "external_id", "external_id")
        for index, order in items:
            first: dict[str, int] = {}
            for j, line in enumerate(order.lines):
                if line.sku in first:
                    errors.append(item_error(index, f"lines[{j}].sku", f"duplicate SKU {line.sku!r} (first at lines[{first[line.sku]}])"))
                first.setdefault(line.sku, j)
        bad = await check_references(session, [(i, o.customer_external_id, [line.sku for line in o.lines]) for i, o in items])
        return errors + [item_error(problem.at, problem.field, problem.message) for problem in bad]

    async def _write_orders(self, session: AsyncSession, items: list[tuple[int, OrderIn]]) -> dict[str, int]:
        given = [
            OrderInput(
                o.external_id, o.customer_external_id,
                tuple(LineInput(line.sku, line.qty, o.status) for line in o.lines),
            )
            for _, o in items
        ]
        write_in_batch(session, PendingBatch("API orders"))
        try:
            counts = await upsert_orders(session, given)
        except UnknownReference as exc:  # a safety net, as above
            raise BatchRejected([item_error(None, exc.field, str(exc))]) from None
        return {"created": counts.created, "updated": counts.updated}

    # customers ----------------------------------------------------------------------------------

    async def customers(self, request: web.Request, body: bytes) -> web.Response:
        context = {"phone_region": self.settings.PHONE_REGION}
        items, errors = _parse_batch(CustomersBody, CustomerIn, "customers", _json(body), context)
        if any(error["index"] is None for error in errors):
            return _unprocessable(errors)
        return await self._write_batch(items, errors, self._check_customers, self._write_customers)

    async def _check_customers(self, session: AsyncSession, items: list[tuple[int, CustomerIn]]) -> ErrorList:
        return _duplicates(items, lambda c: c.external_id, "external_id", "external_id") + _duplicates(
            items, lambda c: c.phone, "phone", "phone"
        )

    async def _write_customers(self, session: AsyncSession, items: list[tuple[int, CustomerIn]]) -> dict[str, int]:
        counts = await upsert_customers(
            session,
            [CustomerInput(c.external_id, c.name, c.tier, c.phone, c.email, c.locale, c.timezone) for _, c in items],
        )
        return {"created": counts.created, "updated": counts.updated}

    # replenishment ------------------------------------------------------------------------------

    async def replenishment(self, request: web.Request, body: bytes) -> web.Response:
        """What to buy or move now, from the demand forecast (signed over the empty body)."""
        async with self._unit_of_work():
            pass  # a read: only the signature is written
        async with self.db.read_session() as session:
            as_of = await forecast_as_of(session)
            if as_of is None:  # not "nothing to buy": not computed yet
                return _error(503, "the first demand forecast is being computed",
                              **{"Retry-After": str(FORECAST_RETRY_AFTER)})
            lines = await suggestions(session)
        return web.json_response({"as_of": as_of.isoformat(), "suggestions": [as_json(line) for line in lines]})

    # coupons ------------------------------------------------------------------------------------

    async def redeem(self, request: web.Request, body: bytes) -> web.Response:
        try:
            given = RedeemBody.model_validate(_json(body, empty={}))
        except ValidationError as exc:
            return _unprocessable(validation_errors(exc, None))
        code = request.match_info["code"]
        async with self._unit_of_work() as session:
            outcome = await redeem_coupon(session, code, given.order_external_id)
        if outcome.status is RedeemStatus.NOT_FOUND:
            return _error(404, "unknown coupon code")
        if outcome.status is RedeemStatus.ALREADY_REDEEMED:
            return _error(409, "coupon already redeemed")
        if outcome.status is RedeemStatus.EXPIRED:
            return _error(410, "coupon expired")
        assert outcome.redeemed_at is not None and outcome.value is not None
        return web.json_response({
            "code": outcome.code,
            "percent": outcome.percent,
            "redeemed_at": outcome.redeemed_at.isoformat(),
            "value": str(outcome.value),
        })


# --- assembly ------------------------------------------------------------------------------------


def add_api_routes(app: web.Application, settings: Settings, db: Database) -> IntegrationApi:
    """Add the API's routes, and its JSON-error and request-log middlewares, to `app`."""
    api = IntegrationApi(settings, db)
    if not app.get(_MIDDLEWARES_KEY):
        app.middlewares.append(_log_requests)
        app.middlewares.append(_json_errors)
        app[_MIDDLEWARES_KEY] = True
    app.router.add_get(f"{PREFIX}/health", api.health)
    app.router.add_post(f"{PREFIX}/stock-events", api.signed(api.stock_events, legacy_ok=True))  # event_id: replays are harmless
    app.router.add_post(f"{PREFIX}/orders", api.signed(api.orders))
    app.router.add_post(f"{PREFIX}/customers", api.signed(api.customers))
    app.router.add_post(f"{PREFIX}/coupons/{{code}}/redeem", api.signed(api.redeem))
    app.router.add_get(f"{PREFIX}/replenishment", api.signed(api.replenishment))
    add_recovery_routes(app, api, PREFIX)
    add_shop_webhook_routes(app, settings, db, api.bounded, PREFIX)  # verified by the platforms' own signatures
    return api


def create_api_app(settings: Settings, db: Database) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    add_api_routes(app, settings, db)
    return app
