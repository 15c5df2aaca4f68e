"""Who someone is to the bot: admin, purchaser, sales rep, linked customer or stranger."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import dialect_insert
from bot.models import Customer, Role, StaffMember, TelegramUser, utcnow
from bot.text_rules import without_unsafe_chars

# Each role can do what the roles after it can.
RANK = {Role.ADMIN: 3, Role.PURCHASER: 2, Role.SALES: 1}


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: int
    chat_id: int
    locale: str
    role: Role | None = None
    customer: Customer | None = None

    def at_least(self, role: Role) -> bool:
        return self.role is not None and RANK[self.role] >= RANK[role]

    @property
    def kind(self) -> str:
        if self.role is not None:
            return self.role.value
        return "customer" if self.customer is not None else "stranger"


async def resolve_actor(
    session: AsyncSession,
    user_id: int,
    chat_id: int,
    *,
    admin_ids: frozenset[int],
    telegram_language: str | None,
    default_locale: str,
    first_name: str = "",
    username: str | None = None,
) -> Actor:
    handle = normal_username(username or "") or None
    known = await session.get(TelegramUser, user_id)
    if known is None:
        session.add(TelegramUser(user_id=user_id, chat_id=chat_id, first_name=without_unsafe_chars(first_name)[:256],
                                 username=handle))
    else:
        known.chat_id, known.last_seen_at = chat_id, utcnow()
        if known.username != handle:
            known.username = handle
    staff = await session.get(StaffMember, user_id)
    role = Role.ADMIN if user_id in admin_ids else Role(staff.role) if staff else None
    customer = None
    if role is None:
        customer = await session.scalar(select(Customer).where(Customer.telegram_user_id == user_id))
    locale = (
        (customer.locale if customer else None)
        or (known.locale if known else None)
        or _telegram_locale(telegram_language)
        or default_locale
    )
    return Actor(user_id=user_id, chat_id=chat_id, locale=locale, role=role, customer=customer)


def normal_username(text: str) -> str:
    """A Telegram @username as stored: without "@", lower case (Telegram ignores case); "" when
    it cannot be one (5-32 letters, digits and underscores)."""
    name = text.strip().removeprefix("@").lower()
    return name if 5 <= len(name) <= 32 and name.replace("_", "").isascii() and name.replace("_", "").isalnum() else ""


async def user_id_by_username(session: AsyncSession, username: str) -> int | None:
    """The user who last wrote to the bot under `username` (a name can pass to someone else)."""
    name = normal_username(username)
    if not name:
        return None
    return await session.scalar(
        select(TelegramUser.user_id).where(TelegramUser.username == name)
        .order_by(TelegramUser.last_seen_at.desc()).limit(1)
    )


def _telegram_locale(language_code: str | None) -> str | None:
    if not language_code:
        return None
    return "zh" if language_code.lower().startswith("zh") else None


async def set_locale(session: AsyncSession, actor: Actor, locale: str) -> None:
    user = await session.get(TelegramUser, actor.user_id)
    if user is not None:
        user.locale = locale
    if actor.customer is not None:
        customer = await session.get(Customer, actor.customer.id)
        if customer is not None:
            customer.locale = locale


async def grant(session: AsyncSession, user_id: int, role: Role, granted_by: int) -> None:
    await session.execute(delete(StaffMember).where(StaffMember.telegram_user_id == user_id))
    await session.execute(
        dialect_insert(session, StaffMember.__table__).values(
            telegram_user_id=user_id, role=role.value, granted_by=granted_by, granted_at=utcnow()
        )
    )


async def revoke(session: AsyncSession, user_id: int) -> bool:
    removed = await session.execute(
        delete(StaffMember).where(StaffMember.telegram_user_id == user_id).returning(StaffMember.telegram_user_id)
    )
    return removed.first() is not None


async def staff_with_role(session: AsyncSession, role: Role) -> list[int]:
    return list(await session.scalars(select(StaffMember.telegram_user_id).where(StaffMember.role == role.value)))


async def purchasing_recipients(session: AsyncSession, admin_ids: frozenset[int]) -> list[int]:
    """Purchasers get reorder prompts; while there is none, the admins do."""
    purchasers = await staff_with_role(session, Role.PURCHASER)
    if purchasers:
        return sorted(purchasers)
    return sorted(set(admin_ids) | set(await staff_with_role(session, Role.ADMIN)))


async def locale_of(session: AsyncSession, user_id: int, default: str) -> str:
    user = await session.get(TelegramUser, user_id)
    return (user.locale if user and user.locale else None) or default
