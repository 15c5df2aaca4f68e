"""What every signed route of the integration API runs through: the signature check, a slot of
the API's load limit, and a write transaction that claims the signature.

Each signature is accepted once, by all processes together (`bot/seen_once.py`). A batch is
checked whole (shapes first, then references and stock levels against the database) inside one
write transaction, and is written only when nothing is wrong: any problem answers 422 listing
every problem, and the transaction rolls back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.answers import Answer, ErrorList, busy, error, unavailable, unprocessable
from bot.api.bodies import read_body, without
from bot.api.middlewares import route_of
from bot.api.signing import HEADER, Signed, keys_of, verify
from bot.db import POOL_SIZE, Database
from bot.seen_once import SIGNATURES, SeenOnceStore
from bot.settings import Settings

log = logging.getLogger("bot.api")

# Load: at most API_CONCURRENCY requests do database work at once (half the pool: the rest is the
# bot's own, see bot/db.py); the others queue for up to QUEUE_WAIT_S, then get 503 + Retry-After.
API_CONCURRENCY = max(1, POOL_SIZE // 2)
QUEUE_WAIT_S = 5.0
# PostgreSQL states that mean "too busy right now, the same request may well work later".
_RETRYABLE_SQLSTATES = frozenset({"55P03", "57014", "40001", "40P01"})  # lock timeout, cancelled, serialization, deadlock
# The request's checked signature, claimed in its unit of work (aiohttp runs each request in a task
# of its own, so this is per request).
_SIGNED: ContextVar[Signed] = ContextVar("stockbot_signed")

Handler = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BatchRejected(Exception):
    """Raised inside the write transaction so it rolls back; answered as 422."""

    def __init__(self, errors: ErrorList) -> None:
        super().__init__(f"{len(errors)} problem(s)")
        self.errors = errors


def _is_overload(exc: DBAPIError) -> bool:
    """A lock or connection wait that ran out (SQLite's busy timeout, PostgreSQL's lock_timeout):
    the request was refused for load, not because anything is wrong with it."""
    if "database is locked" in str(exc.orig):
        return True
    return getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


class IntegrationApi:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._keys = keys_of(settings.WEBHOOK_SECRET.get_secret_value()) if settings.WEBHOOK_SECRET else []
        self._slots = asyncio.Semaphore(API_CONCURRENCY)
        self._signatures = SeenOnceStore(SIGNATURES)

    def signed(self, handler: Handler, *, legacy_ok: bool = False) -> Route:
        """`handler` behind the signature check; `legacy_ok` also takes the body-only form (only
        where a replay is harmless). Every refusal is the same 401 before the handler runs, so it
        tells nothing about what the route would have found (which coupon codes exist)."""

        async def check(request: web.Request) -> web.StreamResponse:
            if not self._keys:
                return error(503, "the integration API is off: WEBHOOK_SECRET is not set")
            try:
                body = await read_body(request)
                signed = verify(self._keys, request.method, request.raw_path, body, request.headers.get(HEADER),
                                legacy_ok=legacy_ok)
                if signed is None:
                    return error(401, f"bad, expired or missing {HEADER} signature")
                _SIGNED.set(signed)
                return await self.bounded(handler, request, body)
            except Answer as answer:
                return error(answer.status, answer.message)

        check.__name__ = handler.__name__
        check.__doc__ = handler.__doc__
        return check

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
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
            raise Answer(401, f"this {HEADER} signature was used before; sign each request anew")

    async def bounded(self, handler: Handler, request: web.Request, body: bytes) -> web.StreamResponse:
        """Run `handler` in one of the API's slots; answer 503 rather than fail when overloaded."""
        try:
            async with asyncio.timeout(QUEUE_WAIT_S):
                await self._slots.acquire()
        except TimeoutError:
            log.warning("%s %s: no slot within %.0fs; answered 503", request.method, route_of(request), QUEUE_WAIT_S)
            return busy()
        try:
            return await handler(request, body)
        except PoolTimeout:
            log.warning("%s %s: no database connection in time; answered 503", request.method, route_of(request))
            return busy()
        except DBAPIError as exc:
            if self.db.trouble.note(exc):  # logged once for the whole spell
                return unavailable()
            if not _is_overload(exc):
                raise
            log.warning("%s %s: %s; answered 503", request.method, route_of(request), type(exc.orig).__name__)
            return busy()
        except OSError as exc:  # the driver could not connect at all (PostgreSQL down)
            if not self.db.trouble.note(exc):
                raise
            return unavailable()
        finally:
            self._slots.release()

    async def write_batch(
        self, items: list[tuple[int, Any]], errors: ErrorList, check: Callable[..., Awaitable[ErrorList]],
        write: Callable[..., Awaitable[dict[str, int]]], dry_run: Callable[..., Awaitable[ErrorList]] | None = None,
    ) -> web.Response:
        """`check` finds what is wrong before writing; `write` may find more (stock going below
        zero) and raise BatchRejected. `dry_run` finds those without writing, for a batch that
        `check` rejects, so that its 422 still lists every problem."""
        try:
            async with self.unit_of_work() as session:
                errors = errors + await check(session, items)
                if errors and dry_run is not None:
                    errors += await dry_run(session, without(items, errors))
                if errors:
                    raise BatchRejected(errors)
                result = await write(session, items)
        except BatchRejected as rejected:
            return unprocessable(rejected.errors)
        except IntegrityError:
            log.warning("batch lost a race with a concurrent writer; rolled back")
            return error(409, "a concurrent request wrote the same records; nothing was applied, retry")
        return web.json_response(result)
