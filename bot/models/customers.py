"""People: the shop's customers and their invites, staff roles, who has written to the bot."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String, and_
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column

from bot.models.common import Base, utcnow


class CustomerTier(enum.StrEnum):
    """How much the shop does to keep a customer; stored as these words (`Customer.tier`)."""

    REGULAR = "regular"
    VIP = "vip"  # contacted first, may get more (coupons, restock holds)


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(256))
    tier: Mapped[str] = mapped_column(String(16), default=CustomerTier.REGULAR.value)
    phone: Mapped[str | None] = mapped_column(String(20), index=True)  # E.164
    email: Mapped[str | None] = mapped_column(String(256))
    locale: Mapped[str | None] = mapped_column(String(8))
    timezone: Mapped[str | None] = mapped_column(String(64))
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    opted_out: Mapped[bool] = mapped_column(default=False)
    unreachable: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (CheckConstraint(f"tier IN ({', '.join(repr(t.value) for t in CustomerTier)})", name="tier_known"),)

    @hybrid_property
    def is_vip(self) -> bool:
        """VIPs are contacted first and may get more (coupons, restock holds); a SQL expression too."""
        return self.tier == CustomerTier.VIP.value

    @hybrid_property
    def contactable(self) -> bool:
        """May the bot message this customer on its own: linked to a chat, not opted out, not
        blocking the bot. The one answer to that question; a SQL expression too."""
        return self.chat_id is not None and not self.opted_out and not self.unreachable

    @contactable.inplace.expression
    @classmethod
    def _contactable_expression(cls) -> Any:
        return and_(cls.chat_id.is_not(None), cls.opted_out.is_(False), cls.unreachable.is_(False))


class InviteToken(Base):
    __tablename__ = "invite_tokens"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)  # None: never (none are issued so)


class Role(enum.StrEnum):
    ADMIN = "admin"
    PURCHASER = "purchaser"
    SALES = "sales"


class StaffMember(Base):
    __tablename__ = "staff"

    telegram_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    granted_by: Mapped[int | None] = mapped_column(BigInteger)
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        CheckConstraint("role IN ('admin', 'purchaser', 'sales')", name="role_known"),
    )


class TelegramUser(Base):
    """Anyone who has written to the bot: their chat and chosen language."""

    __tablename__ = "telegram_users"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    first_name: Mapped[str] = mapped_column(String(256), default="")
    locale: Mapped[str | None] = mapped_column(String(8))
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Lower case, without "@": `/grant @name` finds someone who has written to the bot.
    username: Mapped[str | None] = mapped_column(String(64), index=True)
