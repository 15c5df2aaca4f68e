"""Odd input never breaks the bot: huge text, stickers, edits, forged buttons, floods."""

from sqlalchemy import func, select

from bot.db import Database
from bot.handlers.middlewares import Throttle
from bot.models import Product, StaffMember
from bot.settings import Settings
from tests.factories import add_product
from tests.harness import Harness, running_bot

ADMIN, STRANGER = 1, 777


async def test_huge_text_emoji_and_stickers_get_a_polite_answer(bot_harness: Harness) -> None:
    h = bot_harness
    assert "only help" in await h.reply(STRANGER, "x" * 5000)
    assert "only help" in await h.reply(STRANGER, "😀🎉🔥")
    await h.act(h.sandbox.send_sticker(STRANGER))
    assert "only read text" in h.last(STRANGER).plain_text
    huge_query = await h.reply(ADMIN, "/stock " + "口红" * 2500)
    assert "No product matches" in huge_query
    assert "Usage" in await h.reply(ADMIN, "/grant " + "9" * 5000 + " sales")


async def test_an_edited_message_does_not_crash_or_act(bot_harness: Harness) -> None:
    h = bot_harness
    [sent] = await h.say(ADMIN, "/help")
    before = len(h.sandbox.messages(ADMIN))
    await h.act(h.sandbox.edit_text(ADMIN, sent.message_id - 1, "/grant 5 admin"))
    assert len(h.sandbox.messages(ADMIN)) == before
    async with h.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(StaffMember)) == 0
    assert "/grant" in await h.reply(ADMIN, "/help")  # still alive


async def test_forged_and_garbage_callbacks_are_refused(bot_harness: Harness) -> None:
    h = bot_harness
    [message] = await h.say(ADMIN, "/language")
    for data in ("rp:ordered:999", "rp:nonsense:1", "of:take:1:2", "lang:fr", "garbage", "rq:1:5", "re:1:3"):
        await h.act(h.sandbox.force_callback(ADMIN, message, data))
    assert h.sandbox.unanswered_callbacks() == []


async def test_a_flooding_user_is_throttled_and_others_still_served(settings: Settings, db: Database) -> None:
    async with db.transaction() as session:
        await add_product(session, "LIP-1")
    async with running_bot(settings, db, throttle=Throttle(rate=1, burst=3)) as h:
        for _ in range(10):
            h.sandbox.send_text(STRANGER, "/help")
        await h.sandbox.wait_until_consumed()
        answers = [m.plain_text for m in h.sandbox.messages(STRANGER)]
        assert len(answers) == 4 and "Too many messages" in answers[-1]
        assert "/grant" in await h.reply(ADMIN, "/help")
    async with db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(Product)) == 1


async def test_a_reply_goes_out_only_after_the_updates_work_is_committed(db: Database) -> None:
    from bot.handlers.middlewares import CommitBeforeTelegram, update_session
    from bot.models import Warehouse

    seen: dict[str, object] = {}

    async def telegram(bot, method):  # type: ignore[no-untyped-def]
        async with db.read_session() as other:  # another connection, as another process would be
            seen["visible"] = await other.scalar(select(Warehouse.code))
        return "sent"

    async with db.session() as session:
        session.add(Warehouse(code="SH"))
        await session.flush()
        token = update_session.set(session)
        try:
            assert await CommitBeforeTelegram()(telegram, None, None) == "sent"  # type: ignore[arg-type]
        finally:
            update_session.reset(token)
    assert seen["visible"] == "SH"
