"""/report, the /stats chart and the weekly report, end to end through the sandbox."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile, InputMediaDocument, InputMediaPhoto
from sqlalchemy import func, select

from bot.db import Database
from bot.delivery import attachments
from bot.delivery.telegram import TelegramTransport
from bot.delivery.transport import File, RetryAfter, Unreachable
from bot.inventory.stock import warehouse_ids
from bot.models import Notification, NotificationFile, SalesDay
from bot.clock import shop_today
from bot.reports.weekly import weekly_report
from bot.sandbox import BotApiSandbox, SentMessage, sandbox_bot
from tests.factories import ADMIN, PURCHASER, REP, add_product
from tests.harness import Harness

PNG = b"\x89PNG\r\n\x1a\n"
HEADER = "sku,warehouse,abc,daily_demand,days_of_cover,turnover,stockout_days"


async def shop_with_history(h: Harness) -> None:
    """Two products over the last 14 shop days; LIP-2 ran out for the last 4."""
    today = shop_today(h.services.settings.zone)
    async with h.db.transaction() as session:
        lip1 = await add_product(session, "LIP-1", name="Velvet Lipstick", price="40.00", stock={"SH": 40})
        lip2 = await add_product(session, "LIP-2", name="丝绒口红 正红", price="15.00", stock={"SH": 0})
        sh = (await warehouse_ids(session, ["SH"], create=False))["SH"]
        for back in range(1, 15):
            day = today - timedelta(days=back)
            session.add(SalesDay(product_id=lip1.id, warehouse_id=sh, day=day, sold=3, on_hand=40))
            out = back <= 4
            session.add(SalesDay(product_id=lip2.id, warehouse_id=sh, day=day, sold=0 if out else 2,
                                 on_hand=0 if out else 10))


async def ask(h: Harness, user: int, text: str) -> list[SentMessage]:
    """Like `h.say`, with time for drawing charts on a busy machine (CI runs many tests at once)."""
    before = len(h.sandbox.messages(user))
    h.sandbox.send_text(user, text)
    await h.sandbox.wait_until_consumed(timeout=120)
    return h.sandbox.messages(user)[before:]


def csv_rows(message: SentMessage) -> list[dict[str, str]]:
    assert message.kind == "document" and message.file is not None
    text = message.file.content.decode("utf-8-sig")
    assert text.startswith(HEADER)
    return list(csv.DictReader(io.StringIO(text)))


async def test_purchaser_gets_an_album_of_charts_and_the_csv(bot_harness: Harness) -> None:
    h = bot_harness
    assert "purchaser" in await h.reply(ADMIN, f"/grant {PURCHASER} purchaser")
    assert "Nothing to report" in await h.reply(PURCHASER, "/report")
    await shop_with_history(h)

    sent = await ask(h, PURCHASER, "/report 14")

    assert [m.kind for m in sent] == ["photo"] * 5 + ["document"]
    assert all(m.file is not None and m.file.content.startswith(PNG) for m in sent[:5])
    assert "Report" in sent[0].plain_text and "14 days" in sent[0].plain_text
    assert "selling price" in sent[5].plain_text  # turnover is at price: the catalog has no cost
    rows = {row["sku"]: row for row in csv_rows(sent[5])}
    # LIP-1: 42 units x 40.00 = 1,680.00, LIP-2: 20 x 15.00 = 300.00, which starts at 1,680 /
    # 1,980 = 84.8 % of the revenue: B.
    assert (rows["LIP-1"]["abc"], rows["LIP-2"]["abc"]) == ("A", "B")
    # LIP-2 sold 2 a day on its 10 in-stock days: 4 days out x 2 x 15.00 lost.
    assert (rows["LIP-2"]["stockout_days"], rows["LIP-2"]["lost_sales"]) == ("4", "120.00")
    assert h.sandbox.calls_to("sendMediaGroup")


async def test_report_days_out_of_range_get_the_usage_and_others_get_nothing(bot_harness: Harness) -> None:
    h = bot_harness
    await shop_with_history(h)
    for bad in ("/report 0", "/report 400", "/report soon"):
        assert "Usage: /report" in await h.reply(ADMIN, bad)
    assert "sales rep" in await h.reply(ADMIN, f"/grant {REP} sales")
    refusal = await h.say(REP, "/report")
    assert [m.kind for m in refusal] == ["text"] and "LIP-1" not in refusal[0].plain_text


async def test_stats_shows_the_funnel_as_a_chart_after_the_text(bot_harness: Harness) -> None:
    sent = await ask(bot_harness, ADMIN, "/stats 30")
    assert [m.kind for m in sent] == ["text", "photo"]
    assert "Recovery" in sent[0].plain_text
    assert sent[1].file is not None and sent[1].file.content.startswith(PNG)


async def test_weekly_report_reaches_admins_and_purchasers_once_through_the_outbox(bot_harness: Harness) -> None:
    h = bot_harness
    assert "purchaser" in await h.reply(ADMIN, f"/grant {PURCHASER} purchaser")
    assert "sales rep" in await h.reply(ADMIN, f"/grant {REP} sales")
    await shop_with_history(h)

    settings, templates = h.services.settings, h.services.templates
    assert await weekly_report(h.db, settings, templates) == 2
    assert await weekly_report(h.db, settings, templates) == 0  # the same shop week: already queued
    async with h.db.read_session() as session:
        files = await session.scalar(select(func.count()).select_from(NotificationFile))
    assert files == 2 * 6  # five charts and the CSV each, queued with the message
    await h.settle()

    for chat in (ADMIN, PURCHASER):
        sent = h.sandbox.messages(chat)
        weekly = [m for m in sent if m.kind in ("photo", "document")][-6:]
        assert [m.kind for m in weekly] == ["photo"] * 5 + ["document"]
        assert "Weekly report" in weekly[0].plain_text
        assert csv_rows(weekly[5])
    assert not [m for m in h.sandbox.messages(REP) if m.kind != "text"]
    async with h.db.read_session() as session:
        states = list(await session.scalars(select(Notification.state).where(Notification.kind == "weekly_report")))
    assert states == ["sent", "sent"]


async def test_files_of_finished_reports_are_forgotten_after_a_while(db: Database) -> None:
    from bot.delivery.outbox import Outgoing
    from bot.models import utcnow

    async with db.transaction() as session:
        nid = await attachments.enqueue_with_files(
            session, Outgoing("weekly_report:x:1", 1, "weekly_report", "r"), [File("photo", "a.png", PNG)])
        row = await session.get(Notification, nid)
        assert row is not None
        row.state = "sent"
    async with db.transaction() as session:
        assert await attachments.forget_sent(session, utcnow() - timedelta(days=1)) == 0  # still recent
        assert await attachments.forget_sent(session, utcnow() + timedelta(seconds=1)) == 1


@pytest.fixture
async def client(sandbox: BotApiSandbox) -> AsyncIterator[Bot]:
    bot = sandbox_bot(sandbox, default=DefaultBotProperties(parse_mode="HTML"))
    yield bot
    await bot.session.close()


async def test_sandbox_takes_an_album_of_uploads_as_telegram_does(sandbox: BotApiSandbox, client: Bot) -> None:
    album = await client.send_media_group(1001, [
        InputMediaPhoto(media=BufferedInputFile(PNG + b"1", "a.png"), caption="<b>Weekly</b> report"),
        InputMediaPhoto(media=BufferedInputFile(PNG + b"2", "b.png")),
    ])
    assert len(album) == 2 and album[0].media_group_id == album[1].media_group_id
    assert album[0].caption == "Weekly report" and album[0].photo
    stored = sandbox.messages(1001)
    assert [(m.kind, m.file.content if m.file else None) for m in stored] == [("photo", PNG + b"1"),
                                                                              ("photo", PNG + b"2")]
    with pytest.raises(TelegramBadRequest, match="number of media"):
        await client.send_media_group(1001, [InputMediaPhoto(media=BufferedInputFile(PNG, "a.png"))])
    with pytest.raises(TelegramBadRequest, match="can't be mixed"):
        await client.send_media_group(1001, [InputMediaPhoto(media=BufferedInputFile(PNG, "a.png")),
                                             InputMediaDocument(media=BufferedInputFile(b"x", "r.csv"))])
    again = await client.send_media_group(1001, [InputMediaPhoto(media=album[0].photo[-1].file_id),
                                                 InputMediaPhoto(media=album[1].photo[-1].file_id)])
    assert [m.photo[-1].file_id for m in again if m.photo] == [m.photo[-1].file_id for m in album if m.photo]


async def test_transport_sends_one_photo_alone_and_maps_errors(sandbox: BotApiSandbox, client: Bot) -> None:
    transport = TelegramTransport(client)
    first = await transport.send_album(1001, [File("photo", "a.png", PNG)], "<i>one</i>")
    doc = await transport.send_document(1001, File("document", "r.csv", b"sku\n"), "CSV")
    assert [m.kind for m in sandbox.messages(1001)] == ["photo", "document"] and doc == first + 1
    sandbox.fail_next("sendMediaGroup", status=429, retry_after=3)
    with pytest.raises(RetryAfter):
        await transport.send_album(1001, [File("photo", "a.png", PNG), File("photo", "b.png", PNG)], None)
    sandbox.block_chat(1001)
    with pytest.raises(Unreachable):
        await transport.send_document(1001, File("document", "r.csv", b"sku\n"), None)
