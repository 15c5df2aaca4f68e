"""The bot's own @username, remembered from the Bot API (getMe at start), so that invite links
can be made by a CLI that cannot or should not reach Telegram."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import dialect_insert
from bot.models import BotIdentity, utcnow


async def remember_bot(session: AsyncSession, bot_id: int, username: str) -> None:
    statement = dialect_insert(session, BotIdentity.__table__).values(
        bot_id=bot_id, username=username, learned_at=utcnow()
    )
    await session.execute(statement.on_conflict_do_update(
        index_elements=["bot_id"], set_={"username": username, "learned_at": utcnow()}
    ))


async def learned_username(session: AsyncSession, bot_id: int | None) -> str | None:
    """The username learned for `bot_id` (the number before ":" in BOT_TOKEN), or without one the
    last learned of any bot this database served."""
    query = select(BotIdentity.username).order_by(BotIdentity.learned_at.desc()).limit(1)
    if bot_id is not None:
        query = query.where(BotIdentity.bot_id == bot_id)
    return await session.scalar(query)
