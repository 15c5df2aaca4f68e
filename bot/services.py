"""Everything a handler, job or API route needs, built once by the composition root.

`Services` is the bag the edges hold: aiogram hands it to handlers, the scheduler to jobs, and the
composition root unpacks it for the event worker and its reactions. Domain code never takes it:
the edges pass each function the parts it uses (a session, the settings, the templates, the
catalog, a `Gate`, or a package's small context such as `RecoveryContext`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database
from bot.delivery.outbox import Gate
from bot.delivery.templates import Templates
from bot.inventory.catalog import Catalog
from bot.recovery.context import RecoveryContext
from bot.settings import Settings


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    templates: Templates
    catalog: Catalog = field(default_factory=Catalog)

    @property
    def gate(self) -> Gate:
        return Gate(
            quiet=self.settings.quiet_hours,
            zone=self.settings.zone,
            daily_cap=self.settings.DAILY_MESSAGE_CAP,
        )

    @property
    def recovery(self) -> RecoveryContext:
        return RecoveryContext(settings=self.settings, templates=self.templates, catalog=self.catalog)


def build_services(settings: Settings, db: Database) -> Services:
    return Services(settings=settings, db=db, templates=Templates(zone=settings.zone))


Work = Callable[[Services], Awaitable[object]]
UnitOfWork = Callable[[AsyncSession, Services], Awaitable[object]]


def in_transaction(work: UnitOfWork) -> Work:
    """A job that is one unit of work: the wrapper owns its transaction (commit on success)."""

    async def run(services: Services) -> object:
        async with services.db.transaction() as session:
            return await work(session, services)

    run.__qualname__ = getattr(work, "__qualname__", "job")
    return run
