"""The control group end to end: who is held out, what they get, and whether the comparison finds
the uplift a seeded shop was built with (/stats, the /report CSV, GET /api/v1/recovery)."""

from __future__ import annotations

import csv
import io
import random
from datetime import timedelta

from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import insert, select, update

from bot.api.app import create_api_app
from bot.api.signing import signed_headers
from bot.app import reactions
from bot.db import Database
from bot.events import EventConsumer
from bot.inventory.stock import StockChange, apply_change
from bot.models import (
    Coupon,
    Customer,
    Notification,
    OfferStatus,
    Order,
    OrderLine,
    Product,
    StockoutOffer,
    WaitlistEntry,
    utcnow,
)
from bot.recovery import comparison, funnel
from bot.recovery.offers import continue_plans
from bot.recovery.redemption import redeem_coupon
from bot.recovery.uplift import MIN_GROUP
from bot.services import Services, build_services
from bot.settings import Settings
from tests.factories import ADMIN, add_product, catalog, change_stock, every_row
from tests.harness import running_bot

SECRET = "s3cret-for-tests"
REGULARS, VIPS, OFFLINE = 3000, 60, 40
P_OFFERED, P_HELD_OUT = 0.35, 0.20  # the chance to buy within the window, by group
PRICE_CENTS = 1000  # every product of the shelf
COUPON_CENTS = 100  # a regular with an order line gets 10 % off


async def seeded_shop(settings: Settings, db: Database) -> Services:
    """LIP-1 runs out with REGULARS regulars (half with an open order line, half waiting), VIPS
    VIPs and OFFLINE customers without a chat affected; LIP-2 and LIP-3 are its substitutes."""
    services = build_services(settings, db)
    now = utcnow()
    async with db.transaction() as session:
        for sku, category in (("LIP-1", "lips"), ("LIP-2", "lips"), ("LIP-3", "lips"), ("SOAP-1", "soap")):
            await add_product(session, sku, name=f"Velvet Lipstick {sku}" if category == "lips" else "Soap",
                              category=category, price=str(PRICE_CENTS / 100), stock={"SH": 50}, reorder_point=0)
    consumer = EventConsumer(db, services.catalog, reactions(services))
    await consumer.process()  # the shelf's first stock levels
    async with db.transaction() as session:
        lip = await session.scalar(select(Product.id).where(Product.sku == "LIP-1"))
        people = [{"external_id": f"C-{i:05d}", "name": f"Customer {i}", "tier": "regular",
                   "telegram_user_id": 10_000 + i, "chat_id": 10_000 + i} for i in range(REGULARS)]
        people += [{"external_id": f"V-{i:05d}", "name": f"VIP {i}", "tier": "vip", "telegram_user_id": 20_000 + i,
                    "chat_id": 20_000 + i} for i in range(VIPS)]
        people += [{"external_id": f"X-{i:05d}", "name": f"Offline {i}", "tier": "regular", "telegram_user_id": None,
                    "chat_id": None} for i in range(OFFLINE)]
        await session.execute(insert(Customer), [{**p, "opted_out": False, "unreachable": False, "created_at": now,
                                                  "updated_at": now} for p in people])
        ids = list(await session.scalars(select(Customer.id).order_by(Customer.id)))
        with_line = ids[:REGULARS // 2]
        await session.execute(insert(Order), [{"external_id": f"O-{cid}", "customer_id": cid, "created_at": now,
                                               "updated_at": now} for cid in with_line])
        orders = dict((await session.execute(select(Order.customer_id, Order.id))).all())
        await session.execute(insert(OrderLine), [{"order_id": orders[cid], "product_id": lip, "qty": 1,
                                                   "status": "open"} for cid in with_line])
        await session.execute(insert(WaitlistEntry), [
            {"product_id": lip, "customer_id": cid, "status": "waiting", "joined_at": now,
             "expires_at": now + timedelta(days=90)} for cid in ids[REGULARS // 2:]])
        await apply_change(session, StockChange("LIP-1", "SH", on_hand=0, reason="sale"))
    await consumer.process()
    await continue_plans(db, services.recovery)
    return services


async def shop_buys(db: Database, rng: random.Random) -> None:
    """Move the stockout 12 days back, then let each group's share of its drawn customers buy
    LIP-1 or a substitute within the 10-day window; the offered redeem their coupon when they
    buy. Purchases that must not count: soap within the window, LIP-1 after it."""
    async with db.transaction() as session:
        offers = list(await session.scalars(select(StockoutOffer).order_by(StockoutOffer.id)))
        await session.execute(update(StockoutOffer), [
            {"id": o.id, "created_at": o.created_at - timedelta(days=12)} for o in offers])
        products = dict((await session.execute(select(Product.sku, Product.id))).all())
        codes = dict((await session.execute(select(Coupon.id, Coupon.code))).all())
        # Exactly each group's share buys (which ones is drawn): the comparison must find the
        # uplift the shop was built with; how often an interval covers it is test_uplift's job.
        buyers: set[int] = set()
        for held_out, chance in ((True, P_HELD_OUT), (False, P_OFFERED)):
            group = [o.id for o in offers if o.randomised and (o.status == OfferStatus.HELD_OUT.value) is held_out]
            rng.shuffle(group)
            buyers.update(group[:round(chance * len(group))])
        orders, lines, redeem = [], [], []
        for offer in offers:
            if not offer.randomised:
                continue
            made = offer.created_at  # already moved back
            if offer.id in buyers:
                product = rng.choice([offer.product_id, *offer.substitute_ids])
                orders.append((f"BUY-{offer.id}", offer.customer_id, made + timedelta(days=rng.uniform(0.1, 9.9))))
                lines.append(product)
                if offer.coupon_id is not None:
                    redeem.append((codes[offer.coupon_id], f"BUY-{offer.id}"))
            if rng.random() < 0.1:
                orders.append((f"SOAP-{offer.id}", offer.customer_id, made + timedelta(days=2)))
                lines.append(products["SOAP-1"])
            if rng.random() < 0.1:
                orders.append((f"LATE-{offer.id}", offer.customer_id, made + timedelta(days=10, hours=12)))
                lines.append(products["LIP-1"])
        await session.execute(insert(Order), [{"external_id": e, "customer_id": c, "created_at": at, "updated_at": at}
                                              for e, c, at in orders])
        ids = dict((await session.execute(select(Order.external_id, Order.id))).all())
        await session.execute(insert(OrderLine), [{"order_id": ids[e], "product_id": p, "qty": 1, "status": "open"}
                                                  for (e, _c, _at), p in zip(orders, lines, strict=True)])
        for code, order in redeem:
            assert (await redeem_coupon(session, code, order)).ok


async def test_a_seeded_shop_recovers_the_uplift_it_was_built_with(settings: Settings, db: Database) -> None:
    settings = settings.model_copy(update={"HOLDOUT_PERCENT": 20, "WEBHOOK_SECRET": SecretStr(SECRET)})
    services = await seeded_shop(settings, db)
    async with db.read_session() as session:
        offers = list(await session.scalars(select(StockoutOffer)))
        tiers = dict((await session.execute(select(Customer.id, Customer.tier))).all())
        offline = set(await session.scalars(select(Customer.id).where(Customer.chat_id.is_(None))))
        messaged = set(await session.scalars(select(Notification.customer_id).where(
            Notification.kind == "stockout_offer")))
    # Customers without a chat cannot be offered anything, so no offer is planned for them
    assert len(offers) == REGULARS + VIPS and not offline & {o.customer_id for o in offers}
    held_out = [o for o in offers if o.status == OfferStatus.HELD_OUT.value]
    drawn = [o for o in offers if o.randomised]
    # Only the regulars who can be messaged are drawn; 20 % of 3,000 is 600 (sd 22).
    assert {o.customer_id for o in drawn} == {cid for cid, tier in tiers.items()
                                              if tier == "regular" and cid not in offline}
    assert abs(len(held_out) - 600) < 5 * 22
    # The held out get nothing: no message, no coupon; every other reachable customer is offered.
    assert all(o.randomised and o.coupon_id is None and o.notification_id is None for o in held_out)
    assert not messaged & {o.customer_id for o in held_out}
    assert messaged == set(tiers) - offline - {o.customer_id for o in held_out}
    assert all(o.coupon_id is not None for o in offers if tiers[o.customer_id] == "vip")

    await shop_buys(db, random.Random(24))
    until = utcnow()
    since = until - timedelta(days=30)
    async with db.read_session() as session:
        found = await comparison.build(session, since=since, until=until, attribution_days=10, percent=20)
        report = await funnel.build_report(session, since=since, until=until, attribution_days=10)
    r = found.result
    assert (r.offered.customers, r.held_out.customers) == (REGULARS - len(held_out), len(held_out))
    assert r.uplift is not None and r.incremental_revenue_cents is not None
    assert P_OFFERED - P_HELD_OUT in r.uplift
    assert abs(r.uplift.value - (P_OFFERED - P_HELD_OUT)) < 0.002  # found, not just covered
    assert r.uplift.low > 0  # and it is told apart from no effect
    with_coupon = sum(1 for o in drawn if o.coupon_id is not None) / r.offered.customers
    per_customer = P_OFFERED * (PRICE_CENTS - with_coupon * COUPON_CENTS) - P_HELD_OUT * PRICE_CENTS
    assert r.offered.customers * per_customer in r.incremental_revenue_cents
    # The funnel is about offers made: the control group is not "affected but not contacted".
    assert report.affected == len(offers) - len(held_out)
    assert report.contacted == report.affected

    app = create_api_app(settings, db)
    async with TestClient(TestServer(app)) as client:
        path = "/api/v1/recovery?days=30"
        answer = await client.get(path, headers=signed_headers(SECRET, "GET", path, b""))
        assert answer.status == 200
        body = await answer.json()
        assert (await client.get(path)).status == 401
        bad = "/api/v1/recovery?days=0"
        assert (await client.get(bad, headers=signed_headers(SECRET, "GET", bad, b""))).status == 400
    assert body["window_days"] == services.settings.ATTRIBUTION_DAYS == 10
    assert body["offered"] == {"customers": r.offered.customers, "bought": r.offered.bought,
                               "revenue": f"{r.offered.revenue_cents / 100:.2f}"}
    assert body["held_out"]["customers"] == len(held_out)
    assert body["uplift"]["low"] <= 0.15 <= body["uplift"]["high"]
    assert float(body["incremental_revenue"]["low"]) > 0


async def test_a_small_control_group_is_too_few_to_say_and_the_held_out_get_no_offer(
    settings: Settings, db: Database
) -> None:
    settings = settings.model_copy(update={"HOLDOUT_PERCENT": 50})
    async with running_bot(settings, db) as h:
        await catalog(h)
        async with h.db.transaction() as session:
            lip = await session.scalar(select(Product.id).where(Product.sku == "LIP-1"))
            now = utcnow()
            await session.execute(insert(Customer), [
                {"external_id": f"W-{i}", "name": f"Waiter {i}", "tier": "regular", "telegram_user_id": 5000 + i,
                 "chat_id": 5000 + i, "opted_out": False, "unreachable": False, "created_at": now, "updated_at": now}
                for i in range(40)])
            waiting = list(await session.scalars(select(Customer.id).where(Customer.external_id.like("W-%"))))
            await session.execute(insert(WaitlistEntry), [
                {"product_id": lip, "customer_id": cid, "status": "waiting", "joined_at": now,
                 "expires_at": now + timedelta(days=90)} for cid in waiting])
        await change_stock(h, "LIP-1", -3)
        await h.settle()
        async with h.db.read_session() as session:
            held = dict((await session.execute(select(Customer.chat_id, StockoutOffer.status).join(
                StockoutOffer, StockoutOffer.customer_id == Customer.id))).all())
        held_out = {chat for chat, status in held.items() if status == OfferStatus.HELD_OUT.value}
        assert 0 < len(held_out) < MIN_GROUP and len(held) == 40
        for chat in held:
            assert bool(h.sandbox.messages(chat)) is (chat not in held_out)
        # A held-out customer who forges a press on their own draw gets the refusal; nothing changes.
        async with h.db.read_session() as session:
            forger, draw_id, subs = (await session.execute(
                select(Customer.chat_id, StockoutOffer.id, StockoutOffer.substitute_ids)
                .join(StockoutOffer, StockoutOffer.customer_id == Customer.id)
                .where(StockoutOffer.status == OfferStatus.HELD_OUT.value).limit(1))).one()
        someone = next(chat for chat in held if chat not in held_out)
        before_press = await every_row(h.db)
        h.sandbox.force_callback(forger, h.sandbox.messages(someone)[-1], f"of:take:{draw_id}:{subs[0]}")
        await h.act({})
        assert "not for you" in h.alerts(forger)[-1]
        after_press = await every_row(h.db)
        del after_press["telegram_users"], before_press["telegram_users"]  # a first update records its sender
        assert after_press == before_press

        before = len(h.sandbox.messages(ADMIN))
        h.sandbox.send_text(ADMIN, "/stats")
        await h.sandbox.wait_until_consumed(timeout=120)
        sent = h.sandbox.messages(ADMIN)[before:]
        assert [m.kind for m in sent] == ["text", "photo", "photo"]
        text = sent[0].plain_text
        assert f"Held out: {len(held_out)}, bought 0" in text and f"Offered: {40 - len(held_out)}" in text
        assert "Too few customers to say yet: it takes at least 30 in each group" in text
        assert "Uplift" not in text

        before = len(h.sandbox.messages(ADMIN))
        h.sandbox.send_text(ADMIN, "/report")
        await h.sandbox.wait_until_consumed(timeout=120)
        documents = [m for m in h.sandbox.messages(ADMIN)[before:] if m.kind == "document"]
        assert [d.file.filename.split("_")[0] for d in documents if d.file] == ["report", "recovery"]
        rows = {row["measure"]: row for row in csv.DictReader(io.StringIO(
            documents[1].file.content.decode("utf-8-sig")))}  # type: ignore[union-attr]
        assert rows["held_out_customers"]["value"] == str(len(held_out))
        assert rows["uplift"] == {"measure": "uplift", "value": "", "low": "", "high": ""}


async def test_without_a_control_group_stats_say_how_to_start_one(bot_harness) -> None:  # type: ignore[no-untyped-def]
    h = bot_harness
    await catalog(h)
    await change_stock(h, "LIP-1", -3)
    await h.settle()
    before = len(h.sandbox.messages(ADMIN))
    h.sandbox.send_text(ADMIN, "/stats")
    await h.sandbox.wait_until_consumed(timeout=120)
    sent = h.sandbox.messages(ADMIN)[before:]
    assert [m.kind for m in sent] == ["text", "photo"]
    assert "set HOLDOUT_PERCENT=10 (0–50) in .env and restart" in sent[0].plain_text
