"""Who may use a handler, as filter objects."""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import TelegramObject

from bot.models import Role
from bot.shop.staff import Actor


class HasRole(Filter):
    """Staff of at least this rank (admin > purchaser > sales)."""

    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(self, event: TelegramObject, actor: Actor) -> bool:
        return actor.at_least(self.role)


class IsCustomer(Filter):
    async def __call__(self, event: TelegramObject, actor: Actor) -> bool:
        return actor.customer is not None and actor.role is None

