"""Stockout recovery end to end through the sandbox: offers, coupons, buttons, the funnel."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select

from bot.inventory.stock import StockChange, apply_change, set_incoming, warehouse_ids
from bot.models import (
    Coupon,
    Notification,
    Order,
    OrderLine,
    Reservation,
    StockEvent,
    StockoutOffer,
    StockoutPlan,
    WaitlistEntry,
    utcnow,
)
from bot.recovery import coupons as coupon_service
from bot import jobs
from bot.recovery.redemption import redeem_coupon
from bot.recovery.restock import release_expired_holds
from bot.recovery.sales import send_digest
from bot.recovery.waitlist import join_waitlist
from bot.events import replay_event
from bot.shop.orders import LineInput, OrderInput, upsert_orders
from tests.factories import (
    ADMIN,
    REP,
    REG,
    VIP,
    WAITER,
    ZH,
    add_customer,
    add_order,
    add_product,
    available,
    catalog,
    change_stock,
    customers,
    every_row,
    offer_message,
    offers_of,
    stockout,
)
from tests.harness import Harness


# --- offers --------------------------------------------------------------------------------------------


async def test_offer_names_the_product_lists_substitutes_and_grants_coupons_by_policy(bot_harness: Harness) -> None:
    h = bot_harness
    products = await catalog(h)
    async with h.db.transaction() as session:
        (warehouse,) = (await warehouse_ids(session, ["SH"], create=False)).values()
        eta = utcnow() + timedelta(days=6)
        await set_incoming(session, products["LIP-1"].id, warehouse, 24, eta)
    people = await customers(h, products)
    await change_stock(h, "LIP-1", -3)
    await h.settle()

    vip = offer_message(h, VIP)
    text = vip.text or ""
    assert "Sorry, Vera &lt;VIP&gt;: Velvet Lipstick Red is out of stock" in text
    assert "expected around " + eta.strftime("%Y-%m-%d") in vip.plain_text
    listed = re.findall(r"• <b>(.+?)</b>", text)
    assert len(listed) == 3 and "Velvet Lipstick Red" not in listed
    assert "Velvet Lipstick Red Deluxe" not in text  # +200 %: outside the price band
    assert "Velvet Lipstick Rose</b> · 11.50 (1.50 more)" in text  # pricier: says the difference
    assert "Velvet Lipstick Coral</b> · 9.00" in text and "Coral</b> · 9.00 (" not in text
    code = re.search(r"<code>([A-Z0-9-]+)</code>", text)
    assert code and "15% off" in text and "worth 1.50" in text
    labels = [b.text for b in vip.buttons()]
    assert len(labels) == 5 and "⏳ Wait for restock" in labels and "✖ Cancel this line" in labels
    assert "✅ Velvet Lipstick Rose · 11.50" in labels

    regular = offer_message(h, REG).text or ""
    assert "10% off" in regular and "<code>" in regular
    waiter = offer_message(h, WAITER)
    assert "<code>" not in (waiter.text or "") and "% off" not in (waiter.text or "")  # waitlist-only: no coupon
    assert "✖ Cancel this line" not in [b.text for b in waiter.buttons()]

    async with h.db.read_session() as session:
        coupon = await session.scalar(select(Coupon).where(Coupon.customer_id == people["vip"].id))
        assert coupon.code == code.group(1) and coupon.percent == 15
        assert timedelta(days=13, hours=23) < coupon.expires_at - utcnow() <= timedelta(days=14)
        priorities = dict((await session.execute(select(Notification.chat_id, Notification.priority).where(
            Notification.kind == "stockout_offer"))).all())
    offers = await offers_of(h)
    assert len(offers) == 3
    assert people["offline"].id not in offers  # no chat: not planned at all
    assert priorities[VIP] < priorities[REG] == priorities[WAITER]
    # The VIP's offer went out before every regular's.
    order = [m.chat_id for m in h.sandbox.messages() if m.chat_id in (VIP, REG, WAITER)]
    assert order[0] == VIP


async def test_the_same_stockout_twice_makes_one_offer_per_customer(bot_harness: Harness) -> None:
    h = bot_harness
    products, people = await stockout(h)
    before = await offers_of(h)
    async with h.db.transaction() as session:
        first = await session.scalar(select(StockEvent.id).where(StockEvent.kind == "out_of_stock"))
        await replay_event(session, first)
        late = await add_customer(session, "C-LATE", 105)
        # A second order of a customer already offered, and a new customer's order, while still out.
        await upsert_orders(session, [
            OrderInput("O-REG-2", "C-REG", (LineInput("LIP-1", 3, "open"),)),
            OrderInput("O-LATE", "C-LATE", (LineInput("LIP-1", 1, "backordered"),)),
        ])
    await h.settle()
    after = await offers_of(h)
    assert {cid: o.id for cid, o in before.items()}.items() <= {cid: o.id for cid, o in after.items()}.items()
    assert len(after) == len(before) + 1 and late.id in after
    assert after[late.id].cause_event_id == first  # the same stockout
    async with h.db.read_session() as session:
        per_chat = dict((await session.execute(select(Notification.chat_id, func.count()).where(
            Notification.kind == "stockout_offer").group_by(Notification.chat_id))).all())
        assert await session.scalar(select(func.count()).select_from(Coupon)) == 3
    assert per_chat == {VIP: 1, REG: 1, WAITER: 1, 105: 1}
    assert len([m for m in h.sandbox.messages(REG) if "out of stock" in (m.text or "")]) == 1


# --- buttons -------------------------------------------------------------------------------------------


async def test_taking_a_substitute_reserves_it_until_the_hold_ends(bot_harness: Harness) -> None:
    h = bot_harness
    assert "sales rep" in await h.reply(ADMIN, f"/grant {REP} sales")
    products, people = await stockout(h)
    assert await available(h, "LIP-2") == 5
    message = offer_message(h, VIP)
    await h.press(VIP, message, "Velvet Lipstick Rose")
    edited = h.last(VIP)
    assert edited.message_id == message.message_id and edited.edited
    assert not edited.buttons()  # cannot be pressed twice
    assert "2 × Velvet Lipstick Rose (23.00) is reserved for you until" in edited.plain_text
    assert h.alerts(VIP)[-1] == "Reserved for you: Velvet Lipstick Rose"
    assert await available(h, "LIP-2") == 3  # the order line's quantity is held
    async with h.db.read_session() as session:
        reservation = await session.scalar(select(Reservation))
        offer = await session.get(StockoutOffer, reservation.offer_id)
    assert reservation.qty == 2 and reservation.product_id == products["LIP-2"].id and reservation.reason == "substitute"
    assert timedelta(hours=23) < reservation.expires_at - utcnow() <= timedelta(hours=24)
    assert offer.status == "substitute_taken" and offer.chosen_product_id == products["LIP-2"].id
    assert offer.revenue_cents == 2300 and offer.pressed_at is not None

    # Pressed again (a replayed callback): refused, nothing changes.
    h.sandbox.force_callback(VIP, edited, f"of:take:{offer.id}:{products['LIP-2'].id}")
    await h.act({})
    assert h.alerts(VIP)[-1] == "You have already answered this offer."
    assert await available(h, "LIP-2") == 3

    # The sales rep hears about it in the day's digest, once however often the job runs.
    async with h.db.transaction() as session:
        tomorrow = utcnow() + timedelta(days=1)
        assert await send_digest(session, h.services.recovery, now=tomorrow.replace(hour=23)) == 1
        assert await send_digest(session, h.services.recovery, now=tomorrow.replace(hour=23, minute=30)) == 0
    await h.settle()
    digest = h.last(REP).plain_text
    assert "Cust C-REG" not in digest and "Vera <VIP> (C-VIP): 2 × Velvet Lipstick Rose instead of Velvet Lipstick Red" in digest

    # The hold ends: the stock is released through the stock service, once.
    assert await release_expired_holds(h.db, now=utcnow() + timedelta(hours=25)) == 1
    assert await release_expired_holds(h.db, now=utcnow() + timedelta(hours=26)) == 0
    assert await available(h, "LIP-2") == 5


async def test_a_large_order_tells_sales_at_once(bot_harness: Harness) -> None:
    h = bot_harness
    assert "sales rep" in await h.reply(ADMIN, f"/grant {REP} sales")
    products = await catalog(h)
    async with h.db.transaction() as session:
        big = await add_customer(session, "C-BIG", VIP, tier="vip")
        await add_order(session, big, products["LIP-1"], 12)
        await apply_change(session, StockChange("LIP-4", "SH", delta=20))
    await change_stock(h, "LIP-1", -3)
    await h.settle()
    await h.press(VIP, offer_message(h, VIP), "Matte Lipstick Red")
    assert "12 × Matte Lipstick Red" in h.last(VIP).plain_text
    await h.settle()
    note = h.last(REP).plain_text
    assert "Large substitute order" in note and "took 12 × Matte Lipstick Red (LIP-4)" in note


async def test_a_substitute_sold_out_before_the_press_is_refused_with_the_next_best(bot_harness: Harness) -> None:
    h = bot_harness
    products, people = await stockout(h)
    message = offer_message(h, REG)
    await change_stock(h, "LIP-2", -5)  # sold out in the shop meanwhile
    await h.press(REG, message, "Velvet Lipstick Rose")
    assert "Velvet Lipstick Rose has just sold out" in h.alerts(REG)[-1]
    edited = h.last(REG)
    labels = [b.text for b in edited.buttons()]
    assert not any("Rose" in label for label in labels)
    assert any("Shine Balm" in label for label in labels)  # the next best moved up
    async with h.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(Reservation)) == 0
        offer = await session.get(StockoutOffer, (await offers_of(h))[people["reg"].id].id)
        assert offer.status == "queued" and products["LIP-2"].id not in offer.substitute_ids
    await h.press(REG, edited, "Shine Balm")
    assert "1 × Shine Balm (10.00) is reserved" in h.last(REG).plain_text
    assert await available(h, "LIP-5") == 4


async def test_forged_buttons_are_refused_and_change_nothing(bot_harness: Harness) -> None:
    h = bot_harness
    products, people = await stockout(h)
    offers = await offers_of(h)
    vip_offer, reg_offer = offers[people["vip"].id], offers[people["reg"].id]
    message = offer_message(h, REG)
    forged = [
        f"of:take:{vip_offer.id}:{products['LIP-2'].id}",  # another customer's offer
        f"of:cancel:{vip_offer.id}:0",
        f"of:take:{reg_offer.id}:{products['LIP-6'].id}",  # a product the offer does not offer
        f"of:take:{reg_offer.id}:{products['LIP-1'].id}",
        f"of:cancel:{offers[people['waiter'].id].id}:0",  # not theirs, and no line to cancel
        f"of:explode:{reg_offer.id}:0",
        "of:take:abc:def",  # garbage
        "of:" + "9" * 40,
    ]
    for data in forged:
        h.sandbox.force_callback(REG, message, data)
        await h.act({})
    alerts = h.alerts(REG)
    assert len(alerts) == len(forged) and all("not for you" in a for a in alerts)
    assert h.sandbox.unanswered_callbacks() == []
    # The waiter presses a real button of their own offer on the regular's message id: refused too.
    h.sandbox.force_callback(WAITER, message, f"of:wait:{offers[people['waiter'].id].id}:0")
    await h.act({})
    assert "not for you" in h.alerts(WAITER)[-1]
    after = await offers_of(h)
    assert {o.status for o in after.values()} == {"queued"}
    async with h.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(Reservation)) == 0
        assert await session.scalar(select(func.count()).where(OrderLine.cancel_requested_at.is_not(None))) == 0
    assert await available(h, "LIP-2") == 5
    assert offer_message(h, REG).buttons()  # the real offer is untouched


async def test_wait_joins_the_waitlist_and_cancel_records_the_request(bot_harness: Harness) -> None:
    h = bot_harness
    products, people = await stockout(h)
    assert await jobs.offers_sent(h.services) == 3  # delivered: queued -> sent
    assert {o.status for o in (await offers_of(h)).values()} == {"sent"}  # the offline one was never planned
    await h.press(REG, offer_message(h, REG), "Wait for restock")
    assert "You are on the waitlist." in h.last(REG).plain_text and not h.last(REG).buttons()
    await h.press(VIP, offer_message(h, VIP), "Cancel this line")
    assert "Cancellation requested." in h.last(VIP).plain_text and not h.last(VIP).buttons()
    async with h.db.read_session() as session:
        entry = await session.scalar(select(WaitlistEntry).where(WaitlistEntry.customer_id == people["reg"].id))
        line = await session.scalar(select(OrderLine).join(Order).where(Order.customer_id == people["vip"].id))
    assert entry.status == "waiting" and entry.product_id == products["LIP-1"].id
    assert line.cancel_requested_at is not None and line.status == "backordered"  # the shop system cancels it
    offers = await offers_of(h)
    assert offers[people["reg"].id].status == "waited" and offers[people["vip"].id].status == "cancelled"
    assert "Velvet Lipstick Red" in await h.reply(REG, "/waitlist")


# --- the whole flow in Chinese ---------------------------------------------------------------------------


async def test_the_whole_flow_in_chinese(bot_harness: Harness) -> None:
    h = bot_harness
    products = await catalog(h)
    await customers(h, products, zh=True)
    await change_stock(h, "LIP-1", -3)
    await h.settle()
    offer = offer_message(h, ZH)
    assert "王芳，非常抱歉：Velvet Lipstick Red 已缺货" in offer.plain_text
    assert "（贵 1.50）" in offer.plain_text and "10% 优惠券" in offer.plain_text and "<code>" in (offer.text or "")
    labels = [b.text for b in offer.buttons()]
    assert "⏳ 等待补货" in labels and "✖ 取消此商品" in labels
    await h.press(ZH, offer, "Velvet Lipstick Coral")
    assert "已为您预留：1 × Velvet Lipstick Coral（9.00）" in h.last(ZH).plain_text
    assert h.alerts(ZH)[-1] == "已为您预留：Velvet Lipstick Coral"
    h.sandbox.force_callback(ZH, h.last(ZH), "of:wait:999:0")
    await h.act({})
    assert h.alerts(ZH)[-1] == "此按钮不属于您，或已过期。" or "按钮" in h.alerts(ZH)[-1]


# --- funnel, coupons, reorder prompt ------------------------------------------------------------------------


async def test_stats_show_the_funnel_with_rates_and_revenue_kept(bot_harness: Harness) -> None:
    h = bot_harness
    products, people = await stockout(h)
    await h.press(VIP, offer_message(h, VIP), "Velvet Lipstick Rose")  # 2 × 11.50 kept
    await h.press(REG, offer_message(h, REG), "Wait for restock")
    offers = await offers_of(h)
    async with h.db.transaction() as session:
        coupon = await session.get(Coupon, offers[people["reg"].id].coupon_id)
        assert (await redeem_coupon(session, coupon.code, None)).ok  # 10.00 - 1.00 discount kept
        # The waiter buys the product later through the shop (attributed, not counted as revenue).
        await add_order(session, people["waiter"], products["LIP-3"], 1, external_id="O-WAIT-LATER")
    await h.say(ADMIN, "/help")  # the bot knows the admin (a first update records its sender)
    before = await every_row(h.db)
    stats = await h.reply(ADMIN, "/stats")
    assert await every_row(h.db) == before  # a report reads: the purchase is counted, not recorded
    assert "Customers affected by stockouts: 3" in stats  # the one without a chat is not planned
    assert "Contacted: 3" in stats and "could not be messaged" not in stats
    assert "Reached (delivered): 3 (100%)" in stats
    assert "Answered: 2 (67%)" in stats
    assert "Took a substitute: 1 (33%)" in stats and "Chose to wait: 1 (33%)" in stats
    assert "Cancelled the line: 0 (0%)" in stats
    assert "Bought within the window: 1 (33%)" in stats
    assert "Coupons: 2 issued, 1 redeemed (50%)" in stats
    assert "Revenue kept: 32.00" in stats and "substitutes 23.00 + coupon orders 9.00" in stats
    # The job records the purchase; the figures stay the same once it has.
    assert await jobs.attribute_purchases(h.services) == 1
    async with h.db.read_session() as session:
        bought = await session.scalar(select(StockoutOffer).where(StockoutOffer.bought_at.is_not(None)))
    assert (bought.customer_id, bought.bought_order_external_id) == (people["waiter"].id, "O-WAIT-LATER")
    assert await h.reply(ADMIN, "/stats") == stats
    log = await h.reply(ADMIN, "/stats C-REG")
    assert "stockout_offer: sent" in log


async def test_coupon_codes_are_unique_unambiguous_and_one_per_customer_per_stockout(bot_harness: Harness) -> None:
    codes = {coupon_service.new_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}", code)
        assert not set(code) & set("0O1IL5S2Z8B")
    h = bot_harness
    products, people = await stockout(h)
    async with h.db.transaction() as session:
        again = await coupon_service.issue_coupons(
            session, products["LIP-1"].id, (await offers_of(h))[people["vip"].id].cause_event_id,
            [coupon_service.CouponRequest(people["vip"].id, coupon_service.Grant(50, 1))],
        )
        assert again[people["vip"].id].percent == 15  # the one issued before, not a second
        assert await session.scalar(select(func.count()).select_from(Coupon)) == 2
        coupon = again[people["vip"].id]
        assert (await redeem_coupon(session, coupon.code, None)).ok
        assert not (await redeem_coupon(session, coupon.code, None)).ok  # single use


async def test_reorder_prompt_counts_the_waiting_customers_and_vips(bot_harness: Harness) -> None:
    h = bot_harness
    async with h.db.transaction() as session:
        product = await add_product(session, "LIP-9", name="Velvet Lipstick Plum", reorder_point=5, stock={"SH": 8},
                                    safety_stock=4)
    # The stock arriving is handled first: customers joining after it are not told it is back.
    await h.runtime.process_events()
    async with h.db.transaction() as session:
        for i, tier in enumerate(("vip", "regular", "regular")):
            customer = await add_customer(session, f"C-W{i}", 400 + i, tier=tier)
            await join_waitlist(session, customer.id, product.id, days=90)
    await change_stock(h, "LIP-9", -4)
    await h.settle()
    prompt = h.last(ADMIN).plain_text
    assert "Customers waiting: 3 (1 VIP)" in prompt
    assert "+ 3 waiting" in prompt
    # safety 4 + 1 demand (the 4 just taken are demand as the history counts it: 4 × 7 / 28 days)
    # + 3 waiting - 4 available
    assert "Suggested order: 4" in prompt


async def test_every_recovery_job_is_safe_to_run_twice(bot_harness: Harness) -> None:
    h = bot_harness
    await stockout(h)
    await h.press(VIP, offer_message(h, VIP), "Velvet Lipstick Rose")
    for _name, seconds, job in jobs.RECOVERY_JOBS:
        assert seconds > 0
        await job(h.services)
        await job(h.services)
    async with h.db.read_session() as session:
        plans = list(await session.scalars(select(StockoutPlan)))
    assert plans and all(plan.finished_at is not None for plan in plans)
    async with h.db.transaction() as session:
        assert await coupon_service.mark_expired(session, now=utcnow() + timedelta(days=15)) == 2
        assert await coupon_service.mark_expired(session, now=utcnow() + timedelta(days=16)) == 0
