"""What recovery's message-writing functions share: the settings they read, the templates they
render, the catalog substitutes come from, and the policies read from the settings once (the
substitutes' price band, the coupon grants). One small value instead of the whole `Services`
bag, so recovery can be driven (and tested) from its parts."""

from __future__ import annotations

from dataclasses import dataclass

from bot.delivery.templates import Templates
from bot.inventory.catalog import Catalog
from bot.inventory.substitutes import PriceBand
from bot.recovery.coupons import CouponPolicy
from bot.settings import Settings


@dataclass(frozen=True, slots=True)
class RecoveryContext:
    settings: Settings
    templates: Templates
    catalog: Catalog
    band: PriceBand
    coupons: CouponPolicy

    @classmethod
    def build(cls, settings: Settings, templates: Templates, catalog: Catalog) -> RecoveryContext:
        """The context with its policies read from `settings` (once: the settings never change)."""
        return cls(settings, templates, catalog, PriceBand.from_settings(settings), CouponPolicy.from_settings(settings))

    def customer_locale(self, locale: str | None) -> str:
        """The customer's own locale where the templates have it, else the shop's default."""
        default = self.settings.DEFAULT_LOCALE
        return self.templates.locale(locale or default, default)
