"""/whoami, /cancel, flows that end by themselves or when another command comes, /grant @username,
and invite links made offline."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.models import StaffMember
from bot.jobs import daily_forecast
from tests.factories import ADMIN, PURCHASER, add_product
from tests.harness import Harness
from tests.planning_data import add_history
from tests.test_cli import stockbot

NEWCOMER = 555


async def test_whoami_answers_the_id_and_role_in_the_users_language(bot_harness: Harness) -> None:
    h = bot_harness
    assert await h.reply(ADMIN, "/whoami") == f"Your Telegram user id is {ADMIN}; your role: admin."
    stranger = await h.reply(NEWCOMER, "/whoami")
    assert f"{NEWCOMER}" in stranger and "/grant" in stranger
    assert f"您的 Telegram 用户 ID 是 {NEWCOMER}" in await h.reply(NEWCOMER, "/whoami", language_code="zh")
    assert "/whoami" in await h.reply(NEWCOMER, "/help") and "/cancel" in await h.reply(ADMIN, "/help")


async def test_grant_takes_the_username_of_someone_who_has_started_the_bot(bot_harness: Harness) -> None:
    h = bot_harness
    unknown = await h.reply(ADMIN, "/grant @New_Rep sales")
    assert "I don't know @New_Rep yet" in unknown and "/start" in unknown
    await h.say(NEWCOMER, "/start", username="New_Rep")
    assert f"User {NEWCOMER} is now sales rep." == await h.reply(ADMIN, "/grant @new_rep sales")
    async with h.db.read_session() as session:
        assert await session.scalar(select(StaffMember.role).where(StaffMember.telegram_user_id == NEWCOMER)) == "sales"
    assert "Usage: /grant" in await h.reply(ADMIN, "/grant @ sales")
    assert "Usage: /grant" in await h.reply(ADMIN, "/grant @new_rep king")


async def _order_flow(h: Harness) -> str:
    """Opens the quantity question of /plan's Order button; returns the button's text."""
    plan = (await h.say(PURCHASER, "/plan"))[-1]
    [buy] = [b for b in plan.buttons() if "Order" in b.text]
    asked = await h.press(PURCHASER, plan, buy.text)
    assert "How many" in asked[-1].plain_text
    return buy.text


@pytest.fixture
async def planned(bot_harness: Harness) -> Harness:
    h = bot_harness
    await h.reply(ADMIN, f"/grant {PURCHASER} purchaser")
    async with h.db.transaction() as session:
        product = await add_product(session, "BUY", reorder_point=5, lead_time_days=14, supplier="Rosa Ltd",
                                    stock={"SH": 3})
        await add_history(session, product.id, "SH", [(4, 30)] * 60)
    await daily_forecast(h.services)
    return h


async def test_cancel_ends_a_half_finished_order(planned: Harness) -> None:
    h = planned
    assert "nothing to cancel" in await h.reply(PURCHASER, "/cancel")
    await _order_flow(h)
    assert "Cancelled" in await h.reply(PURCHASER, "/cancel")
    assert "How many" not in await h.reply(PURCHASER, "12")  # not taken as a quantity any more
    assert "取消" in await h.reply(PURCHASER, "/cancel", language_code="zh")


async def test_another_command_ends_the_flow(planned: Harness) -> None:
    h = planned
    await _order_flow(h)
    assert "/stock" in await h.reply(PURCHASER, "/help")
    answer = await h.reply(PURCHASER, "hello?")
    assert "When" not in answer and "whole number" not in answer.lower()


async def test_a_flow_left_for_minutes_ends_by_itself(planned: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h = planned
    await _order_flow(h)
    import bot.handlers.flows as flows

    later = flows._now() + (flows.FLOW_MINUTES + 1) * 60
    monkeypatch.setattr(flows, "_now", lambda: later)
    assert "expired" in await h.reply(PURCHASER, "12")
    assert "When" not in await h.reply(PURCHASER, "12")  # the next text is not captured either


def test_invite_works_offline_from_bot_username_or_the_learned_name(tmp_path: Path) -> None:
    db_path = tmp_path / "shop.db"
    url = f"sqlite+aiosqlite:///{db_path}"
    (tmp_path / "c.csv").write_text("external_id,name,tier\nC1,Ann,vip\n")
    assert stockbot("import", "customers", "c.csv", cwd=tmp_path, DATABASE_URL=url).returncode == 0
    dead = "http://127.0.0.1:9"  # nothing answers: the Bot API is out of reach
    named = stockbot("customers", "invite", cwd=tmp_path, DATABASE_URL=url, BOT_USERNAME="@shop_bot",
                     TELEGRAM_API_URL=dead)
    assert named.returncode == 0 and named.stdout.startswith("C1\thttps://t.me/shop_bot?start=")
    with sqlite3.connect(db_path) as connection:  # what `stockbot run` stores after getMe
        connection.execute("INSERT INTO bot_identity (bot_id, username, learned_at) "
                           "VALUES (123456, 'learned_bot', '2026-01-01 00:00:00.000000')")
    learned = stockbot("customers", "invite", cwd=tmp_path, DATABASE_URL=url, BOT_TOKEN="123456:abc-def",
                       TELEGRAM_API_URL=dead)
    assert learned.returncode == 0 and learned.stdout.startswith("C1\thttps://t.me/learned_bot?start=")
    bad = stockbot("customers", "invite", cwd=tmp_path, DATABASE_URL=url, BOT_USERNAME="not a name")
    assert bad.returncode == 2 and "BOT_USERNAME" in bad.stderr
