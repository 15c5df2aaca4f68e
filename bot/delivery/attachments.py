"""Outbox rows that carry files (the weekly report's charts and CSV).

The files are rows of `notification_files`, written in the transaction that queues the message,
so a report is queued whole or not at all and survives a restart like any other message. The
sender sends such a row's photos as one album with the message text as caption, then each
document with its own caption. A retry after a failure between the two repeats the album: a
report seen twice is better than a CSV lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database
from bot.delivery import outbox
from bot.delivery.outbox import Outgoing
from bot.delivery.transport import File, Transport
from bot.models import Notification, NotificationFile, NotificationState

KINDS = frozenset({"weekly_report"})  # the kinds whose rows carry files
FINISHED = (NotificationState.SENT.value, NotificationState.FAILED.value, NotificationState.DROPPED.value)


async def enqueue_with_files(session: AsyncSession, message: Outgoing, files: Sequence[File]) -> int | None:
    """Queue a message of a kind in `KINDS` with its files; None when this cause was queued before."""
    assert message.kind in KINDS, f"{message.kind!r} rows are sent as text: add it to attachments.KINDS"
    notification_id = await outbox.enqueue(session, message)
    if notification_id is not None and files:
        await session.execute(
            insert(NotificationFile),
            [
                {"notification_id": notification_id, "position": i, "kind": f.kind, "filename": f.filename,
                 "content": f.content, "caption": f.caption}
                for i, f in enumerate(files)
            ],
        )
    return notification_id


async def files_of(session: AsyncSession, notification_id: int) -> list[File]:
    rows = await session.scalars(
        select(NotificationFile).where(NotificationFile.notification_id == notification_id)
        .order_by(NotificationFile.position)
    )
    return [File(row.kind, row.filename, row.content, row.caption) for row in rows]  # type: ignore[arg-type]


async def send(db: Database, transport: Transport, message: Notification) -> int:
    """Send a row with files; the id of its first message."""
    async with db.read_session() as session:
        files = await files_of(session, message.id)
    photos = [f for f in files if f.kind == "photo"]
    first: int | None = None
    if photos:
        first = await transport.send_album(message.chat_id, photos, message.text)
    for document in (f for f in files if f.kind == "document"):
        caption = document.caption if first is not None else message.text
        sent = await transport.send_document(message.chat_id, document, caption)
        first = sent if first is None else first
    if first is None:  # the files are gone (cleared after a long wait): the text still says something
        first = await transport.send(message.chat_id, message.text, message.reply_markup)
    return first


async def forget_sent(session: AsyncSession, before: datetime) -> int:
    """Drop the files of rows finished before `before`: a report's bytes need not be kept forever."""
    done = select(Notification.id).where(Notification.state.in_(FINISHED), Notification.created_at < before)
    result = await session.execute(
        delete(NotificationFile).where(NotificationFile.notification_id.in_(done)).returning(NotificationFile.position)
    )
    return len(result.all())
