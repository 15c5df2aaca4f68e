"""Staff in chat, end to end through the sandbox: admins, purchasers, sales reps."""

import pytest
from sqlalchemy import select

import bot.handlers.admin as admin
from bot.models import Product, ReorderPrompt, StaffMember, StockLevel
from tests.factories import ADMIN, PURCHASER, REP, add_product
from tests.harness import Harness

STRANGER = 999


async def _staff(h: Harness) -> None:
    assert "purchaser" in await h.reply(ADMIN, f"/grant {PURCHASER} purchaser")
    assert "sales rep" in await h.reply(ADMIN, f"/grant {REP} sales")


async def test_admin_grants_and_revokes_roles_and_menus_follow(bot_harness: Harness) -> None:
    h = bot_harness
    await _staff(h)
    async with h.db.read_session() as session:
        roles = dict((await session.execute(select(StaffMember.telegram_user_id, StaffMember.role))).all())
    assert roles == {PURCHASER: "purchaser", REP: "sales"}
    rep_menu = [c["command"] for c in h.sandbox.commands({"type": "chat", "chat_id": REP})]
    assert "stock" in rep_menu and "grant" not in rep_menu and "lowstock" not in rep_menu
    assert "no staff role" in await h.reply(ADMIN, f"/revoke {REP}")
    assert "only help" in await h.reply(REP, "/stock lipstick")  # a stranger again
    assert "Usage: /grant" in await h.reply(ADMIN, "/grant 12 king")
    assert "Usage: /grant" in await h.reply(ADMIN, "/grant bob sales")
    assert "ADMIN_IDS" in await h.reply(ADMIN, f"/revoke {ADMIN}")


async def test_non_admins_are_refused_without_data(bot_harness: Harness) -> None:
    h = bot_harness
    await _staff(h)
    for user in (REP, PURCHASER, STRANGER):
        answer = await h.reply(user, f"/grant {user} admin")
        assert "not available" in answer or "only help" in answer
    assert "only help" in await h.reply(STRANGER, "/stock anything")
    assert "only help" in await h.reply(STRANGER, "/lowstock")


async def test_help_shows_only_the_users_own_commands(bot_harness: Harness) -> None:
    h = bot_harness
    await _staff(h)
    rep_help = await h.reply(REP, "/help")
    assert "/stock" in rep_help and "/receive" not in rep_help and "/grant" not in rep_help
    admin_help = await h.reply(ADMIN, "/help")
    assert "/grant" in admin_help and "/receive" in admin_help
    stranger_help = await h.reply(STRANGER, "/help")
    assert "/stock" not in stranger_help and "/start" in stranger_help


async def test_rep_finds_stock_with_a_typo_and_sees_substitutes_when_out(bot_harness: Harness) -> None:
    h = bot_harness
    await _staff(h)
    async with h.db.transaction() as session:
        await add_product(session, "LIP-1", name="Velvet Lipstick Red", price="12.00", stock={"SH": 4, "BJ": 2})
        await add_product(session, "LIP-2", name="Velvet Lipstick Rose", price="13.00")
        await add_product(session, "LIP-3", name="Matte Lipstick Rose", price="12.50", stock={"SH": 9})
        await add_product(session, "GLO-1", name="唇釉 豆沙色", category="gloss", stock={"SH": 1})
    await h.services.catalog.refresh(h.db)
    answer = await h.reply(REP, "/stock velvet lipstik red")
    assert "LIP-1" in answer and "SH: 4 available" in answer and "BJ: 2 available" in answer
    out = await h.reply(REP, "/stock LIP-2")
    assert "Out of stock" in out and "LIP-3" in out and "9 available" in out
    assert "GLO-1" in await h.reply(REP, "/stock chunyou")
    assert "No product matches" in await h.reply(REP, "/stock qqqqxxxzzz")
    assert "Usage: /stock" in await h.reply(REP, "/stock")


async def test_purchaser_receives_counts_and_orders_from_a_prompt(bot_harness: Harness) -> None:
    h = bot_harness
    await _staff(h)
    async with h.db.transaction() as session:
        await add_product(session, "LIP-1", name="Velvet <b>&Co</b> Red", reorder_point=5, stock={"SH": 8},
                          supplier="Rosa Ltd", lead_time_days=10, safety_stock=3)
    assert "17 on hand (+9)" in await h.reply(PURCHASER, "/count LIP-1 17")
    assert "4 on hand (-13)" in await h.reply(PURCHASER, "/count LIP-1 4 SH")
    await h.settle()
    prompt_message = h.last(PURCHASER)
    assert "Velvet <b>&Co</b> Red" in prompt_message.plain_text  # arrives intact, not as markup
    assert "Rosa Ltd" in prompt_message.plain_text and "Available: 4" in prompt_message.plain_text
    assert h.sandbox.messages(ADMIN)[-1].plain_text.startswith("User")  # admins get no prompt while a purchaser exists
    asked = await h.press(PURCHASER, prompt_message, "Ordered")
    assert "How many" in asked[-1].plain_text
    eta_question = await h.say(PURCHASER, "30")
    assert "When do they arrive" in eta_question[-1].plain_text
    done = await h.press(PURCHASER, eta_question[-1], "10 days")
    assert any("Recorded: 30" in m.plain_text for m in done)
    async with h.db.read_session() as session:
        prompt = await session.scalar(select(ReorderPrompt))
        level = await session.scalar(select(StockLevel))
    assert (prompt.status, prompt.ordered_qty, level.incoming) == ("ordered", 30, 30)
    await h.services.catalog.refresh(h.db)
    # The contract's /stock: incoming stock with its ETA (the answered "10 days", in the shop's zone).
    eta = level.incoming_eta.astimezone(h.services.settings.zone).strftime("%Y-%m-%d")
    assert f"30 incoming ETA {eta}" in (await h.reply(PURCHASER, "/stock LIP-1"))
    received = await h.reply(PURCHASER, "/receive LIP-1 30")
    assert "Received 30" in received and "available in total: 34" in received
    async with h.db.read_session() as session:
        assert (await session.scalar(select(StockLevel))).incoming == 0


async def test_receive_and_count_refuse_bad_arguments(bot_harness: Harness) -> None:
    h = bot_harness
    await _staff(h)
    async with h.db.transaction() as session:
        await add_product(session, "LIP-1", stock={"SH": 3, "BJ": 1})
    for bad in ("/receive", "/receive LIP-1", "/receive LIP-1 -5", "/receive LIP-1 abc", "/receive LIP-1 0 SH",
                "/count LIP-1 99999999 SH", "/receive LIP-1 1 SH extra"):
        assert "Usage" in await h.reply(PURCHASER, bad), bad
    assert "no product with SKU NOPE" in await h.reply(PURCHASER, "/receive NOPE 1 SH")
    assert "several warehouses" in await h.reply(PURCHASER, "/receive LIP-1 1")
    assert "unknown warehouse" in await h.reply(PURCHASER, "/receive LIP-1 1 XX")
    async with h.db.read_session() as session:
        assert await session.scalar(select(Product.on_hand_total)) == 4


async def test_snooze_and_dismiss_and_a_second_press_is_refused(bot_harness: Harness) -> None:
    h = bot_harness
    await _staff(h)
    async with h.db.transaction() as session:
        await add_product(session, "A", reorder_point=5, stock={"SH": 9})
        await add_product(session, "B", reorder_point=5, stock={"SH": 9})
    await h.reply(PURCHASER, "/count A 1")
    await h.reply(PURCHASER, "/count B 1")
    await h.settle()
    prompts = [m for m in h.sandbox.messages(PURCHASER) if m.buttons()]
    assert len(prompts) == 2
    await h.press(PURCHASER, prompts[0], "Snooze")
    assert "Snoozed" in h.sandbox.message(PURCHASER, prompts[0].message_id).plain_text
    await h.press(PURCHASER, prompts[1], "Dismiss")
    await h.act(h.sandbox.force_callback(PURCHASER, prompts[1], prompts[1].buttons()[0].callback_data))
    assert "already handled" in h.alerts(PURCHASER)[-1]
    lowstock = await h.reply(PURCHASER, "/lowstock")
    assert "snoozed" in lowstock and " B " not in lowstock


async def test_admin_imports_a_csv_sent_as_a_document(bot_harness: Harness) -> None:
    h = bot_harness
    await _staff(h)
    bad = "sku,name,category,price\nLIP-1,Velvet Red,lips,12.00\nLIP-2,,lips,-1\n".encode()
    await h.act(h.sandbox.send_document(ADMIN, "catalog.csv", bad, caption="catalog"))
    failed = h.last(ADMIN).plain_text
    assert "not imported" in failed and "catalog.csv:3: name is required" in failed
    async with h.db.read_session() as session:
        assert await session.scalar(select(Product.id)) is None
    good = "\ufeffsku,name,category,price\nLIP-1,Velvet Red,lips,12.00\nGLO-1,唇釉 豆沙色,gloss,9.90\n".encode()
    await h.act(h.sandbox.send_document(ADMIN, "catalog.csv", good, caption="catalog"))
    assert "2 created" in h.last(ADMIN).plain_text
    assert "GLO-1" in await h.reply(REP, "/stock doushase")  # the search index is fresh at once
    await h.act(h.sandbox.send_document(ADMIN, "notes.csv", good, caption="holiday photos"))
    assert "caption catalog, stock, customers, orders or history" in h.last(ADMIN).plain_text
    await h.act(h.sandbox.send_document(PURCHASER, "catalog.csv", good, caption="catalog"))
    assert "only read text" in h.last(PURCHASER).plain_text  # not an admin: no import


async def test_inline_mode_gives_staff_the_same_hits_and_strangers_nothing(bot_harness: Harness) -> None:
    h = bot_harness
    await _staff(h)
    async with h.db.transaction() as session:
        await add_product(session, "LIP-1", name="Velvet Lipstick Red", stock={"SH": 4})
    await h.services.catalog.refresh(h.db)
    await h.act(h.sandbox.inline_query(REP, "velvet lipstik"))
    await h.act(h.sandbox.inline_query(STRANGER, "velvet lipstik"))
    answers = {answer.user_id: answer for answer in h.sandbox.inline_answers()}
    [result] = answers[REP].results
    assert "LIP-1" in result["title"] and "SH: <b>4</b> available" in result["input_message_content"]["message_text"]
    assert answers[STRANGER].results == []


async def test_a_document_without_a_size_still_meets_the_import_cap(
    bot_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A self-hosted Bot API server may leave file_size out and serve files past 20 MB: the
    bytes are counted as they arrive (a small cap here stands for the 20 MB one)."""
    monkeypatch.setattr(admin, "MAX_CSV_BYTES", 2_000)
    h = bot_harness
    rows = "".join(f"SKU-{n:04d},Product {n},lips,1.00\n" for n in range(200))
    big = ("sku,name,category,price\n" + rows).encode()
    assert len(big) > 2_000
    await h.act(h.sandbox.send_document(ADMIN, "catalog.csv", big, caption="catalog", size_known=False))
    assert "too large" in h.last(ADMIN).plain_text
    async with h.db.read_session() as session:
        assert await session.scalar(select(Product.id)) is None
    small = ("sku,name,category,price\n" + "".join(rows.splitlines(keepends=True)[:20])).encode()
    await h.act(h.sandbox.send_document(ADMIN, "catalog.csv", small, caption="catalog", size_known=False))
    assert "created" in h.last(ADMIN).plain_text
