"""What recovery's message-writing functions share: the settings they read, the templates they
render and the catalog substitutes come from. One small value instead of the whole `Services`
bag, so recovery can be driven (and tested) from its parts."""

from __future__ import annotations

from dataclasses import dataclass

from bot.delivery.templates import Templates
from bot.inventory.catalog import Catalog
from bot.inventory.substitutes import PriceBand
from bot.settings import Settings


@dataclass(frozen=True, slots=True)
class RecoveryContext:
    settings: Settings
    templates: Templates
    catalog: Catalog

    @property
    def band(self) -> PriceBand:
        return PriceBand.from_settings(self.settings)

    def customer_locale(self, locale: str | None) -> str:
        """The customer's own locale where the templates have it, else the shop's default."""
        default = self.settings.DEFAULT_LOCALE
        return self.templates.locale(locale or default, default)
