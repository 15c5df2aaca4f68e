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
from bot.inventory.substitutes import PriceBand
from bot.recovery.context import RecoveryContext
from bot.settings import Settings


@dataclass(slots=True)
class Services:
    """The parts, and the policies read from the settings, each built once here (settings are
    frozen, so a policy read at start-up stays right)."""

    settings: Settings
    db: Database
    templates: Templates
    catalog: Catalog = field(default_factory=Catalog)
    gate: Gate = field(init=False)
    recovery: RecoveryContext = field(init=False)

    def __post_init__(self) -> None:
        self.gate = Gate(
            quiet=self.settings.quiet_hours,
            zone=self.settings.zone,
            daily_cap=self.settings.DAILY_MESSAGE_CAP,
        )
        self.recovery = RecoveryContext.build(self.settings, self.templates, self.catalog)

    @property
    def price_band(self) -> PriceBand:
        """The substitutes' price band (SUBSTITUTE_PRICE_BELOW/ABOVE), as recovery reads it."""
        return self.recovery.band


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
