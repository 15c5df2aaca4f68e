"""Everything a handler, job or API route needs, built once by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.db import Database
from bot.delivery.outbox import Gate
from bot.delivery.templates import Templates
from bot.inventory.catalog import Catalog
from bot.settings import Settings


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    templates: Templates
    catalog: Catalog = field(default_factory=Catalog)
    # Called after something was queued in the outbox, so the sender looks now, not at its poll.
    wake_sender: Callable[[], None] = lambda: None

    @property
    def gate(self) -> Gate:
        return Gate(
            quiet=self.settings.quiet_hours,
            zone=self.settings.zone,
            daily_cap=self.settings.DAILY_MESSAGE_CAP,
        )

    def admins(self) -> frozenset[int]:
        return self.settings.ADMIN_IDS


def build_services(settings: Settings, db: Database) -> Services:
    return Services(settings=settings, db=db, templates=Templates(zone=settings.zone))
