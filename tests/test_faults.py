"""Faults the shop would notice: messages failed by an outage, and an admin sending them again."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from bot.db import create_database
from bot.migrate import upgrade
from bot.models import Notification, utcnow
from tests.factories import ADMIN
from tests.harness import Harness
from tests.test_cli import stockbot


def _failed(key: str, error: str, *, age: timedelta = timedelta(hours=1)) -> Notification:
    created = utcnow() - age
    return Notification(dedup_key=key, chat_id=42, kind="notice", text=key, state="failed", attempts=6,
                        not_before=created, created_at=created, last_error=error)


async def test_upgrading_queues_again_what_an_outage_failed_and_keeps_what_telegram_refused(tmp_path: Path) -> None:
    db = create_database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await upgrade(db, "0010_movement_kind")  # the version whose sender gave up after six tries
        async with db.transaction() as session:
            session.add_all([
                _failed("bad-gateway", "Telegram server says - Bad Gateway"),
                _failed("network", "HTTP Client says - Request timeout error"),
                _failed("timeout", "TimeoutError"),
                _failed("refused", "Bad Request: can't parse entities"),
                _failed("long-ago", "Telegram server says - Bad Gateway", age=timedelta(days=30)),
            ])
        await upgrade(db)
        async with db.read_session() as session:
            states = {row.dedup_key: row.state for row in await session.scalars(select(Notification))}
    finally:
        await db.dispose()
    assert states == {"bad-gateway": "pending", "network": "pending", "timeout": "pending",
                      "refused": "failed", "long-ago": "failed"}


async def test_an_admin_lists_failed_messages_and_sends_them_again(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    db = create_database(url)
    try:
        await upgrade(db)
        async with db.transaction() as session:
            session.add_all([_failed("one", "Bad Request: message is too long"), _failed("two", "Bad Request: x")])
            session.add(Notification(dedup_key="sent", chat_id=43, kind="notice", text="fine", state="sent"))
        async with db.read_session() as session:
            ids = {row.dedup_key: row.id for row in await session.scalars(select(Notification))}

        listed = stockbot("failed", cwd=tmp_path, DATABASE_URL=url)
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.strip().splitlines()
        assert [line.split("\t")[0] for line in lines] == [str(ids["two"]), str(ids["one"])]
        assert "message is too long" in lines[1] and "\t42\tnotice\t" in lines[1]

        resent = stockbot("failed", "--resend", str(ids["one"]), str(ids["sent"]), cwd=tmp_path, DATABASE_URL=url)
        assert resent.returncode == 0, resent.stderr
        assert f"not failed (left alone): {ids['sent']}" in resent.stdout
        async with db.read_session() as session:
            states = {row.dedup_key: row.state for row in await session.scalars(select(Notification))}
        assert states == {"one": "pending", "two": "failed", "sent": "sent"}

        assert stockbot("failed", "--resend", cwd=tmp_path, DATABASE_URL=url).returncode == 0
        assert "no failed messages" in stockbot("failed", cwd=tmp_path, DATABASE_URL=url).stdout
    finally:
        await db.dispose()


async def test_a_chat_reply_hit_by_flood_control_waits_and_is_sent(bot_harness: Harness) -> None:
    h = bot_harness
    h.sandbox.fail_next("sendMessage", status=429, retry_after=1, chat_id=ADMIN)
    reply = await h.reply(ADMIN, "/help")
    assert "/grant" in reply
    answers = [call.status for call in h.sandbox.calls_to("sendMessage") if call.params.get("chat_id") == ADMIN]
    assert answers == [429, 200]  # refused once, then sent: one reply, not two
