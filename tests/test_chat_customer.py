"""Customers in chat, end to end: linking, /notify, /waitlist, /stop, /language."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from bot.models import Customer, InviteToken, Notification, WaitlistEntry
from bot.shop.customers import issue_invites
from tests.factories import add_product
from tests.harness import Harness

ANN, BOB, EVE = 501, 502, 666


async def _customers(h: Harness) -> dict[str, str]:
    async with h.db.transaction() as session:
        session.add_all([
            Customer(external_id="C-ANN", name="Ann", tier="vip", phone="+8613800138000"),
            Customer(external_id="C-BOB", name="Bob", tier="regular", phone="+14155550100", locale="zh"),
        ])
        await session.flush()
        return dict(await issue_invites(session))


async def test_inviting_twice_gives_the_same_valid_link_and_an_expired_one_is_refused_clearly(
    bot_harness: Harness,
) -> None:
    h = bot_harness
    first = await _customers(h)
    async with h.db.transaction() as session:
        again = dict(await issue_invites(session, ttl_days=30))
    assert again == first  # no second live link per customer
    # Issued 31 days ago with a 30-day lifetime: expired, and replaced when asked again.
    async with h.db.transaction() as session:
        await session.execute(delete(InviteToken))
        old = dict(await issue_invites(session, ttl_days=30, now=datetime.now(UTC) - timedelta(days=31)))
    answer = await h.reply(ANN, f"/start {old['C-ANN']}")
    assert "expired" in answer and "Ann" not in answer
    async with h.db.transaction() as session:
        fresh = dict(await issue_invites(session, ttl_days=30))
    assert fresh["C-ANN"] != old["C-ANN"]
    assert "Thank you, Ann" in await h.reply(ANN, f"/start {fresh['C-ANN']}")


async def test_invite_link_links_once_and_only_once(bot_harness: Harness) -> None:
    h = bot_harness
    tokens = await _customers(h)
    assert "linked to your customer account" in await h.reply(ANN, f"/start {tokens['C-ANN']}")
    assert "not valid or was already used" in await h.reply(EVE, f"/start {tokens['C-ANN']}")
    assert "not valid" in await h.reply(EVE, "/start forged-token-123")
    async with h.db.read_session() as session:
        ann = await session.scalar(select(Customer).where(Customer.external_id == "C-ANN"))
    assert (ann.telegram_user_id, ann.chat_id) == (ANN, ANN)
    menu = [c["command"] for c in h.sandbox.commands({"type": "chat", "chat_id": ANN})]
    assert "notify" in menu and "stock" not in menu


async def test_phone_share_links_in_e164_with_or_without_plus(bot_harness: Harness) -> None:
    h = bot_harness
    await _customers(h)
    welcome = await h.say(EVE, "/start")
    assert "share your phone number" in welcome[0].plain_text
    assert welcome[0].reply_markup["keyboard"][0][0]["request_contact"] is True
    before = len(h.sandbox.messages(BOB))
    await h.act(h.sandbox.send_contact(BOB, "14155550100"))  # Telegram may drop the '+'
    assert "已绑定" in h.sandbox.messages(BOB)[before].plain_text  # Bob's own locale is zh
    await h.act(h.sandbox.send_contact(ANN, "+86 138 0013 8000", contact_user_id=EVE))
    assert "your own contact" in h.last(ANN).plain_text  # a forwarded contact does not count
    await h.act(h.sandbox.send_contact(EVE, "+447700900123"))
    assert "could not find a customer" in h.last(EVE).plain_text


async def test_notify_joins_asks_when_ambiguous_and_says_when_in_stock(bot_harness: Harness) -> None:
    h = bot_harness
    tokens = await _customers(h)
    await h.reply(ANN, f"/start {tokens['C-ANN']}")
    async with h.db.transaction() as session:
        await add_product(session, "LIP-1", name="Velvet Lipstick Red", stock={"SH": 0})
        await add_product(session, "LIP-2", name="Velvet Lipstick Rose", stock={"SH": 5})
        await add_product(session, "SHA-1", name="Herbal Shampoo")
    await h.services.catalog.refresh(h.db)
    joined = await h.reply(ANN, "/notify herbal shampo")
    assert "waitlist for Herbal Shampoo" in joined and "in stock right now" not in joined
    assert "already on the waitlist" in await h.reply(ANN, "/notify Herbal Shampoo")
    [question] = await h.say(ANN, "/notify velvet lipstick")
    assert "Which product" in question.plain_text and len(question.buttons()) == 2
    await h.press(ANN, question, "Rose")
    in_stock = h.last(ANN).plain_text
    assert "Velvet Lipstick Rose is in stock right now" in in_stock and "in case it runs out" in in_stock
    assert "as soon as it is back" not in in_stock  # no promise to tell of an arrival that has happened
    assert "Usage: /notify" in await h.reply(ANN, "/notify")
    assert "found no product" in await h.reply(ANN, "/notify zzzqqqxxx")
    [waitlist] = await h.say(ANN, "/waitlist")
    assert "Herbal Shampoo" in waitlist.plain_text and "Velvet Lipstick Rose" in waitlist.plain_text
    await h.press(ANN, waitlist, "Herbal Shampoo")
    updated = h.sandbox.message(ANN, waitlist.message_id)
    assert "Herbal Shampoo" not in updated.plain_text and "Velvet Lipstick Rose" in updated.plain_text
    async with h.db.read_session() as session:
        statuses = dict((await session.execute(select(WaitlistEntry.product_id, WaitlistEntry.status))).all())
    assert sorted(statuses.values()) == ["left", "waiting"]


async def test_leave_button_of_someone_else_is_refused(bot_harness: Harness) -> None:
    h = bot_harness
    tokens = await _customers(h)
    await h.reply(ANN, f"/start {tokens['C-ANN']}")
    await h.reply(BOB, f"/start {tokens['C-BOB']}")
    async with h.db.transaction() as session:
        await add_product(session, "SHA-1", name="Herbal Shampoo")
    await h.services.catalog.refresh(h.db)
    await h.reply(ANN, "/notify herbal shampoo")
    [ann_list] = await h.say(ANN, "/waitlist")
    entry_data = ann_list.buttons()[0].callback_data
    [bob_list] = await h.say(BOB, "/waitlist")
    await h.act(h.sandbox.force_callback(BOB, bob_list, entry_data))
    await h.act(h.sandbox.force_callback(BOB, bob_list, "wl:not-a-number"))
    await h.act(h.sandbox.force_callback(BOB, bob_list, "x" * 64))
    assert len(h.alerts(BOB)) == 3 and all("不属于您" in a for a in h.alerts(BOB))
    async with h.db.read_session() as session:
        assert await session.scalar(select(WaitlistEntry.status)) == "waiting"


async def test_stop_opts_out_of_proactive_messages_and_start_opts_back_in(bot_harness: Harness) -> None:
    h = bot_harness
    tokens = await _customers(h)
    await h.reply(ANN, f"/start {tokens['C-ANN']}")
    assert "not send you any more messages" in await h.reply(ANN, "/stop")
    from bot.delivery.outbox import Outgoing, enqueue

    async with h.db.transaction() as session:
        ann = await session.scalar(select(Customer).where(Customer.external_id == "C-ANN"))
        await enqueue(session, Outgoing("test:1", ANN, "test", "proactive", customer_id=ann.id, to_customer=True))
    await h.settle()
    assert h.last(ANN).plain_text.startswith("Done")  # nothing arrived after /stop
    async with h.db.read_session() as session:
        assert await session.scalar(select(Notification.state)) == "dropped"
    assert "get our messages again" in await h.reply(ANN, "/start")


async def test_language_switch_changes_every_reply(bot_harness: Harness) -> None:
    h = bot_harness
    tokens = await _customers(h)
    await h.reply(ANN, f"/start {tokens['C-ANN']}")
    [picker] = await h.say(ANN, "/language")
    await h.press(ANN, picker, "中文")
    assert "中文" in h.sandbox.message(ANN, picker.message_id).plain_text
    assert "用法" in await h.reply(ANN, "/notify")
    async with h.db.read_session() as session:
        assert await session.scalar(select(Customer.locale).where(Customer.external_id == "C-ANN")) == "zh"
