"""Odd input never breaks the bot: huge text, stickers, edits, forged buttons, floods."""

from sqlalchemy import func, select

from bot.db import Database
from bot.handlers.middlewares import Throttle
from bot.handlers.callbacks import LanguagePick, OfferAction, OrderEta, OrderQty, PromptAction
from bot.models import Product, ReorderPrompt, StaffMember
from bot.settings import Settings
from tests.factories import ADMIN, add_product, change_stock, every_row
from tests.harness import Harness, running_bot

STRANGER = 777


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


async def test_forged_and_garbage_callbacks_are_refused_and_change_nothing(bot_harness: Harness) -> None:
    h = bot_harness
    await h.say(ADMIN, "/help")  # the bot knows the admin (a first update records its sender)
    async with h.db.transaction() as session:  # a live reorder prompt, so the forgeries name something real
        await add_product(session, "LIP-1", stock={"SH": 9}, reorder_point=5)
    await change_stock(h, "LIP-1", -6)
    await h.settle()
    prompt_message = h.last(ADMIN)  # with no purchaser, prompts go to the admins
    assert prompt_message.buttons()
    async with h.db.read_session() as session:
        prompt_id = await session.scalar(select(ReorderPrompt.id))
    refused, gone = "button_refused", "prompt_gone"
    forged = {
        PromptAction(action="nonsense", prompt_id=prompt_id).pack(): refused,  # no such action
        PromptAction(action="ordered", prompt_id=999).pack(): gone,  # no such prompt
        OrderQty(prompt_id=prompt_id, qty=5).pack(): gone,  # no order in progress to take a quantity
        OrderEta(prompt_id=prompt_id, days=3).pack(): gone,
        OfferAction(action="take", offer_id=1, product_id=2).pack(): refused,  # offers are for customers
        "garbage": refused,
        LanguagePick(locale="fr").pack(): None,  # a language the bot does not speak: answered, nothing set
    }
    before = await every_row(h.db)
    for data in forged:
        await h.act(h.sandbox.force_callback(ADMIN, prompt_message, data))
    templates = h.services.templates
    assert [(answer.data, answer.text) for answer in h.sandbox.callback_answers(user_id=ADMIN)] == [
        (data, templates.plain("en", key) if key else None) for data, key in forged.items()
    ]
    assert h.sandbox.unanswered_callbacks() == []
    assert await every_row(h.db) == before
    assert h.last(ADMIN) == prompt_message and not prompt_message.edits  # no message sent or edited
    # No order was started either (on SQLite the FSM state is not in the database): a number is just text.
    assert await h.reply(ADMIN, "5") == templates.plain("en", "use_commands")


async def test_a_flooding_user_is_throttled_and_others_still_served(settings: Settings, db: Database) -> None:
    async with db.transaction() as session:
        await add_product(session, "LIP-1")
    # Three at once, then one more a minute: the flood is over long before the next is allowed,
    # however slowly a loaded machine handles it (at one a second, a fourth /help got through
    # whenever the first ten took over a second).
    async with running_bot(settings, db, throttle=Throttle(rate=1 / 60, burst=3)) as h:
        for _ in range(10):
            h.sandbox.send_text(STRANGER, "/help")
        await h.sandbox.wait_until_consumed(timeout=30)  # ten updates, handled one by one
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
