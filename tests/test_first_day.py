"""A real shop's first day (issue 20): an import is a state, not a storm.

A product's first stock level contacts nobody, whatever the source; products already low are
prompted after an import (one digest when there are many); an import or API batch that would
message more customers than MASS_CONTACT_LIMIT waits for an admin; the plan is never an undated
"nothing to buy"."""

from __future__ import annotations

import argparse
import time
from datetime import datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.api.app import create_api_app
from bot.api.signing import signed_headers
from bot.db import Database
from bot.held_command import held
from bot.ingest.importer import import_csv
from bot.models import BatchStatus, ContactBatch, Notification, Product, ReorderPrompt, StockoutOffer
from bot.jobs import daily_forecast
from bot.settings import Settings
from tests.factories import ADMIN, PURCHASER, add_customer, add_order, add_product
from tests.harness import Harness, running_bot
from tests.test_api import SECRET, _settings

ANN, BO, CY, DI = 501, 502, 503, 504


async def _customer_messages(h: Harness) -> int:
    async with h.db.read_session() as session:
        return int(await session.scalar(
            select(func.count()).select_from(Notification).where(Notification.to_customer.is_(True))) or 0)


async def _offers(h: Harness) -> int:
    async with h.db.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(StockoutOffer)) or 0)


async def _shelf(h: Harness, *skus: str) -> None:
    """Products with no stock yet, each ordered (open) by a customer with a linked chat."""
    async with h.db.transaction() as session:
        for n, sku in enumerate(skus):
            product = await add_product(session, sku, name=f"Lipstick {sku}", reorder_point=0)
            customer = await add_customer(session, f"C-{sku}", ANN + n)
            await add_order(session, customer, product, 1)


def _stock_csv(levels: dict[str, int]) -> bytes:
    return ("sku,warehouse,on_hand\n" + "".join(f"{sku},SH,{qty}\n" for sku, qty in levels.items())).encode()


async def _import_stock(h: Harness, levels: dict[str, int]) -> None:
    assert (await import_csv(h.db, "stock", _stock_csv(levels), label="stock.csv")).ok
    await h.settle()


# --- first level vs change -------------------------------------------------------------------------


async def test_a_stock_import_at_zero_contacts_nobody_and_a_later_fall_to_zero_does(bot_harness: Harness) -> None:
    h = bot_harness
    await _shelf(h, "A", "B")
    await _import_stock(h, {"A": 0, "B": 4})  # first levels: a state
    assert await _offers(h) == 0 and await _customer_messages(h) == 0
    await _import_stock(h, {"A": 0, "B": 0})  # B goes from 4 to 0: a stockout; A stays at zero
    assert [m.chat_id for m in h.sandbox.messages() if m.chat_id in (ANN, BO)] == [BO]
    assert "out of stock" in h.last(BO).plain_text.lower()


async def test_an_order_for_a_product_that_started_at_zero_is_no_stockout(bot_harness: Harness) -> None:
    h = bot_harness
    await _shelf(h, "A")
    await _import_stock(h, {"A": 0})
    orders = "external_id,customer_external_id,sku,qty,status\nO-9,C-A,A,2,backordered\n"
    assert (await import_csv(h.db, "orders", orders.encode(), label="orders.csv")).ok
    await h.settle()
    assert await _offers(h) == 0 and await _customer_messages(h) == 0


async def test_api_first_level_is_a_state_and_its_next_fall_a_stockout(bot_harness: Harness, database_url: str) -> None:
    h = bot_harness
    await _shelf(h, "A")
    async with TestClient(TestServer(create_api_app(_settings(database_url), h.db))) as client:
        async def send(event_id: str, on_hand: int) -> None:
            body = (f'{{"events": [{{"event_id": "{event_id}", "sku": "A", "warehouse": "SH", '
                    f'"on_hand": {on_hand}}}]}}').encode()
            headers = {"Content-Type": "application/json",
                       **signed_headers(SECRET, "POST", "/api/v1/stock-events", body)}
            response = await client.post("/api/v1/stock-events", data=body, headers=headers)
            assert response.status == 200, await response.text()
            await h.settle()

        await send("e1", 0)
        assert await _offers(h) == 0 and await _customer_messages(h) == 0
        await send("e2", 3)
        await send("e3", 0)
    assert await _offers(h) == 1 and "out of stock" in h.last(ANN).plain_text.lower()


async def test_chat_count_first_level_is_a_state_and_its_next_fall_a_stockout(bot_harness: Harness) -> None:
    h = bot_harness
    await _shelf(h, "A")
    async with h.db.transaction() as session:  # the shop's warehouse SH (a count names a known one)
        await add_product(session, "OTHER", stock={"SH": 1})
    assert "purchaser" in await h.reply(ADMIN, f"/grant {PURCHASER} purchaser")
    await h.reply(PURCHASER, "/count A 0 SH")
    await h.settle()
    assert await _offers(h) == 0 and await _customer_messages(h) == 0
    await h.reply(PURCHASER, "/count A 2 SH")
    await h.reply(PURCHASER, "/count A 0 SH")
    await h.settle()
    assert await _offers(h) == 1 and "out of stock" in h.last(ANN).plain_text.lower()


# --- the low-stock sweep and its digest ------------------------------------------------------------


async def test_a_first_count_or_api_level_below_the_reorder_point_is_prompted_at_once(
        bot_harness: Harness, database_url: str) -> None:
    """Not at the next import or start: a chat count and an API event are prompted when they land."""
    h = bot_harness
    async with h.db.transaction() as session:
        await add_product(session, "COUNTED", reorder_point=5)
        await add_product(session, "SENT", reorder_point=5)
        await add_product(session, "PLENTY", reorder_point=5)
        await add_product(session, "OTHER", reorder_point=0, stock={"SH": 1})  # the shop's warehouse SH
    assert "purchaser" in await h.reply(ADMIN, f"/grant {PURCHASER} purchaser")
    await h.reply(PURCHASER, "/count COUNTED 2 SH")
    await h.reply(PURCHASER, "/count PLENTY 9 SH")
    await h.settle()
    prompts = [m.plain_text for m in h.sandbox.messages(PURCHASER) if m.buttons()]
    assert len(prompts) == 1 and "COUNTED" in prompts[0]
    async with TestClient(TestServer(create_api_app(_settings(database_url), h.db))) as client:
        body = b'{"events": [{"event_id": "first-sent", "sku": "SENT", "warehouse": "SH", "on_hand": 0}]}'
        headers = {"Content-Type": "application/json", **signed_headers(SECRET, "POST", "/api/v1/stock-events", body)}
        assert (await client.post("/api/v1/stock-events", data=body, headers=headers)).status == 200
    await h.settle()
    prompts = [m.plain_text for m in h.sandbox.messages(PURCHASER) if m.buttons()]
    assert len(prompts) == 2 and "SENT" in prompts[1]
    async with h.db.read_session() as session:
        prompted = set(await session.scalars(select(ReorderPrompt.product_id)))
    assert len(prompted) == 2  # PLENTY, above its reorder point, is not


async def test_products_imported_low_are_prompted_in_one_digest_with_a_button_for_the_rest(
        bot_harness: Harness) -> None:
    h = bot_harness
    async with h.db.transaction() as session:
        for n in range(25):
            await add_product(session, f"LOW-{n:02d}", reorder_point=10)
        await add_product(session, "FINE", reorder_point=10)
    await _import_stock(h, {**{f"LOW-{n:02d}": n % 5 for n in range(25)}, "FINE": 50})
    async with h.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(ReorderPrompt)) == 25
    to_admin = [m for m in h.sandbox.messages(ADMIN) if m.text]  # no purchaser yet: the admins
    assert len(to_admin) == 1  # one digest, not 25 prompts
    digest = to_admin[0].plain_text
    assert "25 products" in digest and "FINE" not in digest
    assert digest.count("\n•") == 10 and "LOW-00" in digest  # the ten most urgent: 0 available first
    rest = await h.press(ADMIN, to_admin[0], "The other 15")
    listed = rest[-1].plain_text
    assert listed.count("\n•") == 15 and "11–25 of 25" in listed
    await _import_stock(h, {"FINE": 49})  # the next import: they have live prompts, nothing new
    assert len([m for m in h.sandbox.messages(ADMIN) if m.text]) == 2  # (the page of the rest)


async def test_a_few_products_imported_low_get_a_prompt_each(bot_harness: Harness) -> None:
    h = bot_harness
    async with h.db.transaction() as session:
        await add_product(session, "LOW-1", reorder_point=10)
        await add_product(session, "LOW-2", reorder_point=10)
    await _import_stock(h, {"LOW-1": 3, "LOW-2": 0})
    prompts = [m for m in h.sandbox.messages(ADMIN) if m.buttons()]
    assert sorted("LOW-1" in p.plain_text for p in prompts) == [False, True]  # one prompt each
    assert all("Mark ordered" in [b.text for b in p.buttons()] or p.buttons() for p in prompts)


async def test_two_large_imports_share_the_bulk_lane_the_second_is_not_served_last(bot_harness: Harness) -> None:
    """Each import empties 60 products (more than go to the live lane), each ordered by a linked
    customer: the first pass's bulk slice serves customers of both, not the first import's only."""
    h = bot_harness
    first = [f"ONE-{n:02d}" for n in range(60)]
    second = [f"TWO-{n:02d}" for n in range(60)]
    async with h.db.transaction() as session:
        for n, sku in enumerate(first + second):
            product = await add_product(session, sku, reorder_point=0, stock={"SH": 5})
            await add_order(session, await add_customer(session, f"C-{sku}", 10_000 + n), product, 1)
    await h.settle()
    assert (await import_csv(h.db, "stock", _stock_csv(dict.fromkeys(first, 0)), label="one.csv")).ok
    assert (await import_csv(h.db, "stock", _stock_csv(dict.fromkeys(second, 0)), label="two.csv")).ok
    await h.runtime.consumer.process_once()  # weighs and releases both, then one slice of each lane
    async with h.db.read_session() as session:
        offered = list(await session.scalars(
            select(Product.sku).join(StockoutOffer, StockoutOffer.product_id == Product.id).distinct()))
    assert 0 < len(offered) < 120
    assert any(sku.startswith("ONE") for sku in offered) and any(sku.startswith("TWO") for sku in offered)
    await h.settle()
    async with h.db.read_session() as session:
        assert await session.scalar(select(func.count(func.distinct(StockoutOffer.product_id)))) == 120


# --- the mass-contact hold -------------------------------------------------------------------------


async def _held_shop(h: Harness) -> None:
    """Three products that had stock, each ordered by its own customer; and a fourth, LIVE."""
    await _shelf(h, "A", "B", "C", "LIVE")
    await _import_stock(h, {"A": 5, "B": 5, "C": 5, "LIVE": 5})


def _held_ask(h: Harness):  # type: ignore[no-untyped-def]
    asks = [m for m in h.sandbox.messages(ADMIN) if "Held:" in m.plain_text]
    assert len(asks) == 1, "one held batch, asked once"
    return asks[0]


@pytest.fixture
async def limited(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    async with running_bot(settings.model_copy(update={"MASS_CONTACT_LIMIT": 2}), db) as harness:
        yield harness


async def test_a_batch_over_the_limit_is_held_until_an_admin_sends_it(limited: Harness, capsys) -> None:  # type: ignore[no-untyped-def]
    h = limited
    await _held_shop(h)
    assert "purchaser" in await h.reply(ADMIN, f"/grant {PURCHASER} purchaser")
    await _import_stock(h, {"A": 0, "B": 0, "C": 0})  # three customers: over the limit of 2
    assert await _offers(h) == 0 and await _customer_messages(h) == 0
    ask = _held_ask(h)
    assert "3 customers" in ask.plain_text and "3 products" in ask.plain_text and "stock.csv" in ask.plain_text
    assert [b.text for b in ask.buttons()] == ["Send", "Discard"]

    assert await held(h.services.settings, argparse.Namespace()) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == "id\tcause\tcustomers\tproducts\tsince"
    assert listed[1].split("\t")[1:4] == ["import stock stock.csv", "3", "3"]

    # A purchaser (staff, but no admin) and a customer press it: refused, nothing changes.
    h.sandbox.force_callback(PURCHASER, ask, ask.buttons()[0].callback_data or "")
    await h.act({})
    h.sandbox.force_callback(ANN, ask, ask.buttons()[0].callback_data or "")
    await h.act({})
    await h.settle()
    assert await _customer_messages(h) == 0

    # A live stockout passes the held batch.
    await h.reply(PURCHASER, "/count LIVE 0 SH")
    await h.settle()
    assert "out of stock" in h.last(ANN + 3).plain_text.lower()
    assert await _customer_messages(h) == 1

    await h.press(ADMIN, ask, "Send")
    assert "on their way" in h.last(ADMIN).plain_text
    await h.settle()
    assert {ANN, BO, CY} <= {m.chat_id for m in h.sandbox.messages() if "out of stock" in (m.plain_text.lower())}
    assert await _offers(h) == 4
    h.sandbox.force_callback(ADMIN, ask, ask.buttons()[1].callback_data or "")  # Discard, too late
    await h.act({})
    assert "already sent" in h.alerts(ADMIN)[-1]
    assert await _offers(h) == 4


async def test_a_discarded_batch_sends_nothing_and_is_counted_in_stats(limited: Harness) -> None:
    h = limited
    await _held_shop(h)
    await _import_stock(h, {"A": 0, "B": 0, "C": 0})
    ask = _held_ask(h)
    send = ask.buttons()[0].callback_data or ""
    await h.press(ADMIN, ask, "Discard")
    assert "will not be sent" in h.last(ADMIN).plain_text
    h.sandbox.force_callback(ADMIN, ask, send)  # a second press (an old copy of the buttons)
    await h.act({})
    assert "already discarded" in h.alerts(ADMIN)[-1]
    await h.settle()
    assert await _offers(h) == 0 and await _customer_messages(h) == 0
    async with h.db.read_session() as session:
        assert await session.scalar(select(ContactBatch.status).where(ContactBatch.customers == 3)) == \
            BatchStatus.DISCARDED.value
    stats = await h.reply(ADMIN, "/stats")
    assert "Held batches discarded: 1 (3 customers not messaged)" in stats


async def test_a_batch_within_the_limit_goes_out_at_once(limited: Harness) -> None:
    h = limited
    await _held_shop(h)
    await _import_stock(h, {"A": 0, "B": 0})  # two customers: the limit itself
    assert await _offers(h) == 2 and await _customer_messages(h) == 2
    assert not [m for m in h.sandbox.messages(ADMIN) if "Held" in (m.text or "")]


# --- the plan before the first forecast ------------------------------------------------------------


async def test_replenishment_waits_for_the_first_forecast_and_then_says_as_of(
        bot_harness: Harness, database_url: str) -> None:
    h = bot_harness
    async with h.db.transaction() as session:
        await add_product(session, "A", stock={"SH": 3})
    signed_at = time.time()
    headers = signed_headers(SECRET, "GET", "/api/v1/replenishment", b"", now=signed_at)
    async with TestClient(TestServer(create_api_app(_settings(database_url), h.db))) as client:
        early = await client.get("/api/v1/replenishment", headers=headers)
        assert early.status == 503 and int(early.headers["Retry-After"]) > 0
        assert "being computed" in await h.reply(ADMIN, "/plan")
        await daily_forecast(h.services)
        # Signed anew, as a client does for each request: one second apart, another signature
        response = await client.get("/api/v1/replenishment", headers=signed_headers(
            SECRET, "GET", "/api/v1/replenishment", b"", now=signed_at - 1))
        assert response.status == 200
        body = await response.json()
    assert datetime.fromisoformat(body["as_of"]).tzinfo is not None and "suggestions" in body
    assert "being computed" not in await h.reply(ADMIN, "/plan")
