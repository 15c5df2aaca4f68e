"""Demand forecast and replenishment in chat, end to end through the sandbox."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.models import DemandForecast, Product, PurchaseOrder, StockLevel, StockTransfer, Warehouse
from bot.jobs import cover_after_stock_changes, daily_forecast
from tests.factories import ADMIN, PURCHASER, REP, add_product
from tests.harness import Harness
from tests.planning_data import add_history


async def _staff(h: Harness) -> None:
    await h.reply(ADMIN, f"/grant {PURCHASER} purchaser")
    await h.reply(ADMIN, f"/grant {REP} sales")


async def _prompts(h: Harness) -> list[str]:
    await h.settle()
    return [m.plain_text for m in h.sandbox.messages(PURCHASER) if m.plain_text.startswith("📦")]


async def test_a_product_that_ran_out_is_forecast_at_its_real_rate_and_warned_early(bot_harness: Harness) -> None:
    h = bot_harness
    await _staff(h)
    async with h.db.transaction() as session:
        product = await add_product(session, "LIP-1", name="Velvet Red", reorder_point=5, lead_time_days=14,
                                    supplier="Rosa Ltd")
        # Eight and a half weeks at 4 a day, then 30 days out of stock selling nothing.
        await add_history(session, product.id, "SH", [(4, 40)] * 60 + [(0, 0)] * 30)
    await daily_forecast(h.services)
    async with h.db.read_session() as session:
        demand = await session.scalar(select(DemandForecast.daily_demand))
    assert 3.5 <= demand <= 4.5  # the empty month is not read as no demand
    await cover_after_stock_changes(h.services)  # the ledger is read from here on
    assert "Received 20" in await h.reply(PURCHASER, "/receive LIP-1 20 SH")
    await cover_after_stock_changes(h.services)
    [prompt] = await _prompts(h)  # 20 units, above the reorder point of 5, last 5 days: order now
    for shown in ("LIP-1", "Velvet Red", "Available: 20", "reorder point 5", "4.0 a day", "5.0 days",
                  "Suggested order", "Rosa Ltd", "lead time 14 days", "runs out before a new order"):
        assert shown in prompt, shown
    await h.reply(PURCHASER, "/count LIP-1 19 SH")
    await cover_after_stock_changes(h.services)
    assert len(await _prompts(h)) == 1  # one warning per episode
    await h.services.catalog.refresh(h.db)
    assert "Forecast 4.0 a day" in await h.reply(REP, "/stock LIP-1")


async def test_a_slow_seller_is_not_pushed_to_buy(bot_harness: Harness) -> None:
    h = bot_harness
    await _staff(h)
    async with h.db.transaction() as session:
        product = await add_product(session, "SLOW", reorder_point=1, lead_time_days=7, stock={"SH": 4})
        await add_history(session, product.id, "SH", ([(1, 4)] + [(0, 4)] * 9) * 9)
    await daily_forecast(h.services)
    assert "Nothing to buy or move" in await h.reply(PURCHASER, "/plan")
    assert await _prompts(h) == []


async def _two_warehouses(h: Harness) -> Product:
    async with h.db.transaction() as session:
        product = await add_product(session, "TWO", reorder_point=5, lead_time_days=14, supplier="Rosa Ltd",
                                    stock={"BJ": 200})
        await add_history(session, product.id, "SH", [(4, 30)] * 60)
        await add_history(session, product.id, "BJ", [(1, 200)] * 60)
    await daily_forecast(h.services)
    return product


async def _levels(h: Harness) -> dict[str, tuple[int, int]]:
    async with h.db.read_session() as session:
        rows = await session.execute(
            select(Warehouse.code, StockLevel.on_hand, StockLevel.incoming).join(Warehouse, Warehouse.id == StockLevel.warehouse_id)
        )
        return {code: (on_hand, incoming) for code, on_hand, incoming in rows}


async def test_plan_moves_spare_stock_before_buying_and_receive_settles_it(bot_harness: Harness) -> None:
    h = bot_harness
    await _staff(h)
    await _two_warehouses(h)
    answer = await h.say(PURCHASER, "/plan")
    plan = answer[-1]
    assert "Move" in plan.plain_text and "BJ → SH" in plan.plain_text
    [button] = [b for b in plan.buttons() if "Move" in b.text]
    moved = int(button.text.split("Move ")[1].split(" ")[0])
    assert 0 < moved < 200
    done = await h.press(PURCHASER, plan, button.text)
    assert f"Moved {moved} × TWO from BJ to SH" in done[-1].plain_text
    assert await _levels(h) == {"BJ": (200 - moved, 0), "SH": (0, moved)}
    again = (await h.say(PURCHASER, "/plan"))[-1].plain_text
    assert "SH → BJ" not in again and "BJ → SH" not in again  # never back, nor twice
    assert "Received" in await h.reply(PURCHASER, f"/receive TWO {moved} SH")
    assert await _levels(h) == {"BJ": (200 - moved, 0), "SH": (moved, 0)}
    async with h.db.read_session() as session:
        assert await session.scalar(select(StockTransfer.status)) == "received"


async def test_forged_plan_buttons_are_refused_and_change_nothing(bot_harness: Harness) -> None:
    h = bot_harness
    await _staff(h)
    product = await _two_warehouses(h)
    plan = (await h.say(PURCHASER, "/plan"))[-1]
    [button] = [b for b in plan.buttons() if "Move" in b.text]
    _, action, pid, source, target, qty = button.callback_data.split(":")
    forged = [
        f"pl:t:{pid}:{source}:{target}:{int(qty) + 1}",  # more than suggested
        f"pl:t:{pid}:{target}:{source}:{qty}",  # the other way round
        f"pl:t:999:{source}:{target}:{qty}",  # another product
        f"pl:b:{pid}:0:{source}:5",  # buy for a warehouse that needs nothing
        f"pl:t:{pid}:{source}:{target}:-3",
        "pd:not-a-supplier",
    ]
    before = await _levels(h)
    for data in forged:
        await h.act(h.sandbox.force_callback(PURCHASER, plan, data))
        assert "no longer applies" in h.alerts(PURCHASER)[-1], data
    await h.act(h.sandbox.force_callback(REP, plan, button.callback_data))  # not a purchaser
    assert "no longer applies" not in h.alerts(REP)[-1]
    assert await _levels(h) == before
    async with h.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(StockTransfer)) == 0
        assert (await session.get(Product, product.id)).on_hand_total == 200


async def test_buy_from_plan_records_an_order_and_the_draft_goes_out_as_csv(bot_harness: Harness) -> None:
    h = bot_harness
    await _staff(h)
    async with h.db.transaction() as session:
        product = await add_product(session, "BUY", reorder_point=5, lead_time_days=14, supplier="Rosa Ltd",
                                    attributes={"pack_size": "12"}, stock={"SH": 3})
        await add_history(session, product.id, "SH", [(4, 30)] * 60)
    await daily_forecast(h.services)
    plan = (await h.say(PURCHASER, "/plan"))[-1]
    assert "Order" in plan.plain_text and "packs of 12" in plan.plain_text
    [buy] = [b for b in plan.buttons() if "Order" in b.text]
    qty = int(buy.text.split("Order ")[1].split(" ")[0])
    assert qty % 12 == 0 and qty >= 4 * 14
    documents = await h.press(PURCHASER, plan, "Draft order: Rosa Ltd")
    [document] = [m for m in documents if m.kind == "document"]
    assert document.file is not None and "Rosa Ltd" in document.plain_text
    content = document.file.content.decode("utf-8-sig")
    assert content.splitlines()[0].startswith("supplier,sku,name,warehouse,qty")
    assert f"Rosa Ltd,BUY,Product BUY,SH,{qty}," in content
    asked = await h.press(PURCHASER, plan, buy.text)
    assert "How many" in asked[-1].plain_text
    eta_question = await h.say(PURCHASER, str(qty))
    done = await h.press(PURCHASER, eta_question[-1], "14 days")
    assert any(f"Recorded: {qty}" in m.plain_text for m in done)
    assert (await _levels(h))["SH"] == (3, qty)
    async with h.db.read_session() as session:
        order = await session.scalar(select(PurchaseOrder))
    assert (order.qty, order.supplier, order.received_at) == (qty, "Rosa Ltd", None)
    assert "Nothing to buy" in await h.reply(PURCHASER, "/plan")  # on its way: not bought twice
    await h.reply(PURCHASER, f"/receive BUY {qty} SH")
    async with h.db.read_session() as session:
        assert (await session.scalar(select(PurchaseOrder))).received_at is not None
    assert "1 receipts, 100% on time" in await h.reply(PURCHASER, "/plan")


async def test_the_plan_speaks_chinese_too(bot_harness: Harness) -> None:
    h = bot_harness
    await _staff(h)
    await _two_warehouses(h)
    await h.reply(PURCHASER, "/language")
    await h.press(PURCHASER, h.last(PURCHASER), "中文")
    plan = (await h.say(PURCHASER, "/plan"))[-1]
    assert "补货计划" in plan.plain_text and "调拨" in plan.plain_text


async def test_the_prompt_suggests_a_transfer_first_and_its_button_moves_the_units(bot_harness: Harness) -> None:
    h = bot_harness
    await _staff(h)
    async with h.db.transaction() as session:
        product = await add_product(session, "MIX", reorder_point=5, lead_time_days=20, supplier="Rosa Ltd",
                                    stock={"BJ": 60})
        await add_history(session, product.id, "SH", [(4, 30)] * 60)
        await add_history(session, product.id, "BJ", ([(1, 60)] + [(0, 60)] * 4) * 12)  # BJ barely sells
    await daily_forecast(h.services)
    await h.settle()
    [prompt] = [m for m in h.sandbox.messages(PURCHASER) if m.plain_text.startswith("📦")]
    assert "Move first" in prompt.plain_text and "from BJ to SH" in prompt.plain_text
    button = prompt.button("Move")
    qty = int(button.text.split("Move ")[1].split(" ")[0])
    done = await h.press(PURCHASER, prompt, button.text)
    assert f"Moved {qty} × MIX from BJ to SH" in done[-1].plain_text
    assert await _levels(h) == {"BJ": (60 - qty, 0), "SH": (0, qty)}


async def test_a_revoke_drops_the_half_done_flow(bot_harness: Harness) -> None:
    h = bot_harness
    await _staff(h)
    async with h.db.transaction() as session:
        product = await add_product(session, "BUY", reorder_point=5, lead_time_days=14, supplier="Rosa Ltd",
                                    stock={"SH": 3})
        await add_history(session, product.id, "SH", [(4, 30)] * 60)
    await daily_forecast(h.services)
    plan = (await h.say(PURCHASER, "/plan"))[-1]
    [buy] = [b for b in plan.buttons() if "Order" in b.text]
    assert "How many" in (await h.press(PURCHASER, plan, buy.text))[-1].plain_text
    await h.reply(ADMIN, f"/revoke {PURCHASER}")
    await h.reply(ADMIN, f"/grant {PURCHASER} purchaser")  # back, but the old question is gone
    answers = await h.say(PURCHASER, "24")
    assert not any("ETA" in m.plain_text or "arrive" in m.plain_text for m in answers), [m.plain_text for m in answers]
    async with h.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(PurchaseOrder)) == 0
