"""Per-chat order and pacing when several processes claim from one outbox (PostgreSQL).

Within one process the sender keeps a chat's messages in order, one a second. Across processes
the claim has to: `SKIP LOCKED` lets process B take a chat's second message while process A is
still claiming or sending its first, and B's memory knows nothing of A's last send. So after the
claim's `SELECT`, on PostgreSQL:

- a chat is left out of this claim when an earlier message of it is still to go: being sent
  (state 'sending', whoever holds it) or due and unclaimed (skipped because another claim has it
  locked). An earlier message that is pending but not yet due (quiet hours, a retry's backoff)
  does not hold the chat up.
- a chat sent to within the per-chat interval gets its `not_before` moved past that send, which
  the sender honours, so the one-a-second rule holds whichever process sent last (`sent_at` is the
  acknowledging process's clock, written after the send: hosts' clocks must agree to well
  under a second, as NTP keeps them; a send "from the future" up to an interval ahead counts);
- each chat's rows are handed over in id order (queue order), whatever their priorities.

Rows left out stay pending (the claim's row locks end with its transaction) for a later claim.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Notification

_EARLIER_UNSENT = text(
    "SELECT DISTINCT n.chat_id FROM notifications n"
    " JOIN unnest(CAST(:chats AS bigint[]), CAST(:firsts AS bigint[])) AS c(chat_id, first_id)"
    " ON n.chat_id = c.chat_id"
    " WHERE n.id < c.first_id AND n.state IN ('pending', 'sending')"
    " AND (n.state = 'sending' OR n.not_before <= :now)"
)
_LAST_SENT = text(
    "SELECT chat_id, max(sent_at) FROM notifications"
    " WHERE chat_id = ANY(CAST(:chats AS bigint[])) AND sent_at > :since AND sent_at < :until"
    " GROUP BY chat_id"
)


async def keep_chat_order(
    session: AsyncSession, rows: list[Notification], now: datetime, interval: timedelta
) -> list[Notification]:
    """The claimed rows another process's sending allows, each chat's in id order."""
    by_chat: dict[int, list[Notification]] = defaultdict(list)
    for row in rows:
        by_chat[row.chat_id].append(row)
    chats = list(by_chat)
    firsts = [min(row.id for row in by_chat[chat]) for chat in chats]
    held_up = set(
        (await session.execute(_EARLIER_UNSENT, {"chats": chats, "firsts": firsts, "now": now})).scalars()
    )
    window = {"chats": chats, "since": now - interval, "until": now + interval}
    for chat, sent_at in (await session.execute(_LAST_SENT, window)).all():
        for row in by_chat[chat]:
            row.not_before = max(row.not_before, sent_at + interval)
    # Keep the claim's overall order (priority first), but each chat's rows in id order.
    in_id_order = {chat: iter(sorted(chat_rows, key=lambda row: row.id)) for chat, chat_rows in by_chat.items()}
    return [next(in_id_order[row.chat_id]) for row in rows if row.chat_id not in held_up]
